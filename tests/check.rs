//! `churn-alert check`: validates the example config and names the culprit of a bad one.

mod common;

use std::path::Path;
use std::process::Command;

use common::BIN;

fn check(config: &Path, vars: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BIN);
    command.arg("check").arg("--config").arg(config);
    command.env_remove("WEIBAN_CORP_ID");
    for (k, v) in vars {
        command.env(k, v);
    }
    command.output().expect("run churn-alert check")
}

const VARS: &[(&str, &str)] = &[
    ("WEIBAN_CORP_ID", "corp"),
    ("WEIBAN_SECRET", "secret"),
    ("WECOM_MANAGERS_KEY", "key"),
    ("WECOM_SALES_KEY", "key2"),
    ("SMTP_PASSWORD", "pw"),
];

fn example() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")).unwrap()
}

#[test]
fn example_config_prints_five_run_times_in_the_zone() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"));
    let out = check(path, VARS);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    for line in lines {
        let t = chrono::DateTime::parse_from_rfc3339(line).expect("RFC 3339");
        assert_eq!(t.offset().local_minus_utc(), 8 * 3600, "{line}");
        assert_eq!(chrono::Timelike::minute(&t) % 5, 0, "{line}");
    }
}

fn check_variant(text: &str, vars: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    let out = check(&path, vars);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_key_is_named() {
    let (ok, err) = check_variant(
        &example().replace("[schedule]", "[schedule]\ncronn = \"x\""),
        VARS,
    );
    assert!(!ok);
    assert!(err.contains("cronn"), "{err}");
}

#[test]
fn bad_cron_is_named() {
    let (ok, err) = check_variant(&example().replace("*/5 * * * *", "*/5 * * *"), VARS);
    assert!(!ok);
    assert!(err.contains("schedule.cron"), "{err}");
}

#[test]
fn unset_variable_is_named_with_its_key() {
    let (ok, err) = check_variant(&example(), &VARS[1..]);
    assert!(!ok);
    assert!(
        err.contains("WEIBAN_CORP_ID") && err.contains("weiban.corp_id"),
        "{err}"
    );
}

#[test]
fn bad_timezone_is_named() {
    let (ok, err) = check_variant(&example().replace("Asia/Shanghai", "Asia/Atlantis"), VARS);
    assert!(!ok);
    assert!(err.contains("schedule.timezone"), "{err}");
}

#[test]
fn a_misspelt_template_variable_fails_check_naming_the_template() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("digest.md.hbs"),
        "{{#each groups}}{{staf.name}}{{/each}}",
    )
    .unwrap();
    let text = example().replace(
        "# [templates]\n# dir = \"templates\"",
        &format!("[templates]\ndir = \"{}\"", templates.display()),
    );
    assert!(
        text.contains("[templates]\ndir"),
        "the example config changed shape"
    );
    let (ok, err) = check_variant(&text, VARS);
    assert!(!ok);
    assert!(
        err.contains("digest.md.hbs") && err.contains("staf"),
        "{err}"
    );
}
