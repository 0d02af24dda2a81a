//! `churn-alert check`: validates the example config and names the culprit of a bad one.

use std::path::Path;
use std::process::Command;

use crate::common::{BIN, VARS};

fn check(config: &Path, vars: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BIN);
    command.arg("check").arg("--config").arg(config);
    command.env_remove("WEIBAN_CORP_ID");
    for (k, v) in vars {
        command.env(k, v);
    }
    command.output().expect("run churn-alert check")
}

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

// Issue 9, items 12 and 13: configs that pass a lax check but fail or do nothing at run time.

/// The example with `from` replaced by `to`, which must be in it.
fn variant(from: &str, to: &str) -> String {
    let text = example();
    assert!(text.contains(from), "the example has no `{from}`");
    text.replacen(from, to, 1)
}

fn rejected(text: &str, key: &str, needles: &[&str]) -> String {
    let (ok, err) = check_variant(text, VARS);
    assert!(!ok, "check passed a config it must reject ({key})");
    assert!(err.contains(key), "the key `{key}` is not named: {err}");
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` missing: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn item12_robot_urls_without_a_key_are_rejected() {
    let url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=${WECOM_MANAGERS_KEY}";
    rejected(
        &variant(url, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"),
        "wecom_webhooks[0]",
        &["key="],
    );
    rejected(
        &variant(url, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="),
        "wecom_webhooks[0]",
        &["key="],
    );
    let err = rejected(
        &variant(url, "${WECOM_MANAGERS_KEY}"),
        "wecom_webhooks[0]",
        &["paste the whole robot URL"],
    );
    assert!(!err.contains("key\n") && !err.contains("`key`"), "{err}");
}

#[test]
fn item12_a_missing_template_dir_or_an_unused_template_name_is_rejected() {
    let (ok, err) = check_variant(
        &format!(
            "{}\n[templates]\ndir = \"/nonexistent/churn-alert-templates\"\n",
            example()
        ),
        VARS,
    );
    assert!(!ok);
    assert!(
        err.contains("templates.dir") && err.contains("/nonexistent"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("digst.md.hbs"), "{{total}}").unwrap();
    let (ok, err) = check_variant(
        &format!(
            "{}\n[templates]\ndir = \"{}\"\n",
            example(),
            dir.path().display()
        ),
        VARS,
    );
    assert!(!ok);
    assert!(
        err.contains("digst.md.hbs") && err.contains("digest.md.hbs"),
        "names the stray file and the expected names: {err}"
    );
}

#[test]
fn item12_a_store_path_that_cannot_be_created_is_rejected() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let inside_a_file = format!("{}/store", file.path().display());
    let text = variant(
        "path = \"data/churn-alert\"",
        &format!("path = \"{inside_a_file}\""),
    );
    rejected(&text, "store.path", &["cannot be created"]);
}

#[test]
fn item12_a_retention_shorter_than_the_first_lookback_is_rejected() {
    rejected(
        &variant("[store]\n", "[store]\nretention = \"2h\"\n"),
        "store.retention",
        &["first_lookback"],
    );
    rejected(
        &variant("[store]\n", "[store]\nretention = \"1s\"\n"),
        "store.retention",
        &["out of range"],
    );
}

#[test]
fn item12_a_schedule_that_never_fires_is_rejected() {
    rejected(
        &variant("*/5 * * * *", "0 0 30 2 *"),
        "schedule.cron",
        &["never fires"],
    );
}

#[test]
fn item12_durations_out_of_range_are_rejected_not_panicked_on() {
    let text = example().replace(
        "[weiban]",
        "[weiban]\nrate_limit_wait = \"300000000000years\"",
    );
    let (ok, err) = check_variant(&text, VARS);
    assert!(!ok);
    assert!(err.contains("weiban.rate_limit_wait"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let text = example().replace("[weiban]", "[weiban]\nrequest_timeout = \"0s\"");
    rejected(&text, "weiban.request_timeout", &["out of range"]);
}

#[test]
fn item13_type_errors_name_the_key_and_never_echo_the_value() {
    let text = example().replacen("\"${WEIBAN_SECRET}\"", "98765432109", 1);
    assert_ne!(
        text,
        example(),
        "the example sets weiban.secret from WEIBAN_SECRET"
    );
    let err = rejected(&text, "weiban.secret", &[]);
    assert!(!err.contains("98765432109"), "the value is echoed: {err}");
}

#[test]
fn item13_every_unset_variable_is_reported_in_one_run() {
    let (ok, err) = check_variant(&example(), &VARS[2..]);
    assert!(!ok);
    for needle in [
        "WEIBAN_CORP_ID",
        "weiban.corp_id",
        "WEIBAN_SECRET",
        "weiban.secret",
    ] {
        assert!(err.contains(needle), "{needle} missing: {err}");
    }
}

/// Issue 13, item 6: the example config with exactly the env example's variables passes.
#[test]
fn the_example_config_and_the_env_example_tell_one_story() {
    let env_example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/churn-alert.env.example"
    ))
    .unwrap();
    let vars: Vec<(&str, &str)> = env_example
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    assert!(vars.len() >= 4, "{vars:?}");
    let (ok, err) = check_variant(&example(), &vars);
    assert!(
        ok,
        "the example config needs a variable the env example lacks: {err}"
    );
}

/// Issue 13, item 8: cron errors name the field and crontab's range, not the crate's form.
#[test]
fn cron_errors_name_the_field_and_its_range() {
    let (ok, err) = check_variant(&example().replace("*/5 * * * *", "61 * * * *"), VARS);
    assert!(!ok);
    assert!(
        err.contains("schedule.cron")
            && err.contains("minute field has `61`")
            && err.contains("0 to 59"),
        "{err}"
    );
    assert!(
        !err.contains("0 61 * * * *"),
        "the internal 6-field form leaked: {err}"
    );
}

/// Every key (as a dotted path) and its value, comments aside.
fn keys_and_values(value: &toml::Value, path: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                keys_and_values(v, &format!("{path}.{k}"), out);
            }
        }
        toml::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                keys_and_values(v, &format!("{path}[{i}]"), out);
            }
        }
        other => out.push(format!("{path} = {other}")),
    }
}

#[test]
fn the_chinese_example_config_has_the_same_keys_and_passes_check() {
    let zh_path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config.example.zh-CN.toml"
    ));
    let zh_text = std::fs::read_to_string(zh_path).unwrap();
    let (mut en, mut zh) = (Vec::new(), Vec::new());
    keys_and_values(&toml::from_str(&example()).unwrap(), "", &mut en);
    keys_and_values(&toml::from_str(&zh_text).unwrap(), "", &mut zh);
    assert!(en.len() > 20, "{en:?}");
    assert_eq!(en, zh, "the two example configs differ in keys or values");
    assert!(zh_text.contains("# "), "comments");
    let out = check(zh_path, VARS);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
