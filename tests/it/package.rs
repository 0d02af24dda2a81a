//! The shipped operations files: the package definition that `deploy/package.sh` feeds
//! cargo-deb and cargo-generate-rpm (staged with this build's binary; the packagers and the
//! release build stay out of the suite), and the Prometheus rules under promtool.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What the packages install, with modes: the list README.md and README.zh-CN.md give.
const INSTALLED: &[&str] = &[
    "0600 /etc/churn-alert/churn-alert.env",
    "0644 /etc/churn-alert/config.toml",
    "0755 /usr/bin/churn-alert",
    "0644 /usr/lib/systemd/system/churn-alert.service",
    "0644 /usr/lib/systemd/system/churn-alert@.service",
    "0644 /usr/share/bash-completion/completions/churn-alert",
    "0644 /usr/share/churn-alert/grafana/churn-alert.json",
    "0644 /usr/share/churn-alert/prometheus/churn-alert.rules.yml",
    "0644 /usr/share/doc/churn-alert/README.md",
    "0644 /usr/share/doc/churn-alert/README.zh-CN.md",
    "0644 /usr/share/doc/churn-alert/config.example.toml",
    "0644 /usr/share/doc/churn-alert/config.example.zh-CN.toml",
    "0644 /usr/share/fish/vendor_completions.d/churn-alert.fish",
    "0644 /usr/share/man/man1/churn-alert.1.gz",
    "0644 /usr/share/zsh/vendor-completions/_churn-alert",
];

#[test]
fn the_package_definition_installs_what_the_readme_says() {
    let out = tempfile::tempdir().expect("temp dir");
    let staged = Command::new("bash")
        .arg(root().join("deploy/package.sh"))
        .args([
            "--stage-only",
            "--binary",
            env!("CARGO_BIN_EXE_churn-alert"),
            "--out",
        ])
        .arg(out.path())
        .output()
        .expect("bash runs");
    assert!(
        staged.status.success(),
        "{}",
        String::from_utf8_lossy(&staged.stderr)
    );
    let list = std::fs::read_to_string(out.path().join("stage.list")).expect("stage.list");
    let list: BTreeSet<&str> = list.lines().collect();
    // Every fixed file, and a man page per command, generated from the clap definitions.
    for line in INSTALLED {
        assert!(list.contains(line), "{line} is not staged: {list:#?}");
    }
    for command in ["run", "check", "once", "state", "report", "backfill"] {
        let page = format!("0644 /usr/share/man/man1/churn-alert-{command}.1.gz");
        assert!(list.contains(page.as_str()), "{page} is not staged");
    }
    let unexpected: Vec<&&str> = list
        .iter()
        .filter(|l| !INSTALLED.contains(l) && !l.starts_with("0644 /usr/share/man/man1/"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "staged but not documented: {unexpected:?}"
    );
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let readme_zh = std::fs::read_to_string(root().join("README.zh-CN.md")).expect("README");
    for line in INSTALLED {
        let path = line.split_once(' ').map_or(*line, |(_, p)| p);
        assert!(readme.contains(path), "README.md does not list {path}");
        assert!(
            readme_zh.contains(path),
            "README.zh-CN.md does not list {path}"
        );
    }

    // The packaged config keeps its state where the package makes room for it, and checks.
    let stage = out.path().join("stage");
    let config = std::fs::read_to_string(stage.join("etc/churn-alert/config.toml")).unwrap();
    assert!(
        config.contains("path = \"/var/lib/churn-alert/store\""),
        "{config}"
    );
    let conffiles = std::fs::read_to_string(out.path().join("conffiles")).expect("conffiles");
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        [
            "/etc/churn-alert/config.toml",
            "/etc/churn-alert/churn-alert.env"
        ]
    );
    let unit = std::fs::read_to_string(stage.join("usr/lib/systemd/system/churn-alert.service"))
        .expect("unit");
    assert!(
        unit.contains("ExecStart=/usr/bin/churn-alert run"),
        "{unit}"
    );
    assert!(unit.contains("User=churn-alert") && !unit.contains("DynamicUser=yes"));

    // Maintainer scripts: the system user on install; state kept on remove, gone on purge.
    let script = |name: &str| {
        std::fs::read_to_string(out.path().join("scripts").join(name)).expect("a script")
    };
    let (deb_postinst, rpm_postinst) = (script("deb/postinst"), script("rpm/postinst"));
    assert!(deb_postinst.contains("adduser --system"), "{deb_postinst}");
    assert!(rpm_postinst.contains("useradd -r"), "{rpm_postinst}");
    for postinst in [&deb_postinst, &rpm_postinst] {
        assert!(postinst.contains("/var/lib/churn-alert"));
        // It says how to start the service (an `echo`), and starts nothing itself.
        let starts = postinst.lines().map(str::trim).any(|l| {
            !l.starts_with("echo")
                && (l.contains("systemctl enable") || l.contains("systemctl start"))
        });
        assert!(!starts, "installing must not start it:\n{postinst}");
    }
    let deb_postrm = script("deb/postrm");
    assert!(deb_postrm.contains("purge") && deb_postrm.contains("/var/lib/churn-alert"));

    // cargo-deb and cargo-generate-rpm get exactly the staged files.
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    for line in INSTALLED {
        let path = line.split_once(' ').map_or(*line, |(_, p)| p);
        if path.starts_with("/usr/share/man/") {
            continue;
        }
        let source = format!("target/package/stage{path}");
        assert_eq!(
            manifest.matches(source.as_str()).count(),
            2,
            "{source} must be an asset of both packages"
        );
    }
}

#[test]
fn promtool_checks_and_tests_the_alert_rules() {
    let have = Command::new("promtool").arg("--version").output().is_ok();
    if !have {
        // `.ci/run` installs promtool and sets this, so CI never skips the rules.
        assert!(
            std::env::var_os("CHURN_ALERT_REQUIRE_PROMTOOL").is_none(),
            "promtool is missing (Debian: apt-get install prometheus)"
        );
        eprintln!("promtool is not installed: the alert rules are not checked here");
        return;
    }
    let checked = Command::new("bash")
        .arg(root().join("deploy/prometheus/check.sh"))
        .output()
        .expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(checked.status.success(), "{text}");
    assert!(text.contains("SUCCESS: 5 rules found"), "{text}");
    assert!(
        text.contains("Unit Testing:") && !text.contains("FAILED"),
        "{text}"
    );
}

/// The dashboard: valid JSON, a `corp` variable, and every query filtered by it, so that a
/// daemon serving several corps shows each one's figures, not their sum.
#[test]
fn every_dashboard_query_follows_the_corp_variable() {
    let text = std::fs::read_to_string(root().join("deploy/grafana/churn-alert.json"))
        .expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("template variables");
    assert!(
        variables.iter().any(|v| v["name"] == "corp"),
        "no corp variable"
    );
    let mut queries = Vec::new();
    collect_exprs(&dashboard["panels"], &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");
    for expr in &queries {
        assert!(
            expr.contains("corp=~\"$corp\""),
            "not filtered by corp: {expr}"
        );
    }
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}
