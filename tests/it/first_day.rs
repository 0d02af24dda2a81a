//! Issue 23's "broken today": what an operator meets on the first day, read as they would.

use std::time::{Duration, Instant};

use crate::common::*;
use churn_alert_sim::{SimLoss, WeibanFaults};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");

fn example_cmd(args: &[&str], store: &std::path::Path) -> std::process::Output {
    // The example's store path is relative: run where it cannot exist.
    let mut command = std::process::Command::new(BIN);
    command
        .args(args)
        .arg("--config")
        .arg(EXAMPLE)
        .current_dir(store);
    for (k, v) in VARS {
        command.env(k, v);
    }
    command.output().expect("run churn-alert")
}

#[test]
fn the_preview_of_the_documented_example_shows_its_lines_as_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = example_cmd(&["preview"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("\\u{a}"),
        "newlines shown as escapes:\n{text}"
    );
    // The managers' digest: its heading and each customer on lines of their own.
    let digest = text
        .split("══ ")
        .find(|part| part.starts_with("route `managers`, robot #1"))
        .unwrap_or_else(|| panic!("no managers robot in:\n{text}"));
    assert!(digest.lines().count() > 5, "{digest}");
    assert!(
        digest
            .lines()
            .any(|l| l.starts_with("## ") || l.starts_with("**")),
        "{digest}"
    );
}

#[test]
fn state_refuses_a_store_that_does_not_exist_and_creates_none() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["state", "stats"][..],
        &["state", "pending"],
        &["state", "retry"],
    ] {
        let out = example_cmd(args, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} reported on a store that is not there"
        );
        assert!(
            err.contains("no store at data/churn-alert") && err.contains("store.path"),
            "{args:?}: {err}"
        );
    }
    assert!(
        !dir.path().join("data").exists(),
        "a read-only command created a store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_sizes_agree_between_text_and_json() {
    let env = Env::new().await;
    env.weiban
        .add_losses(&SimLoss::generate("量", 3, 1, now() - 60, 5));
    assert!(env.once().await.status.success());
    let text = stdout(&env.cmd(&["state", "stats"]).await);
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&env.cmd(&["state", "stats", "--json"]).await)).unwrap();
    let bytes = json["size_on_disk"].as_u64().unwrap();
    assert!(bytes > 0, "{json}");
    assert!(
        text.contains(&format!("store size on disk:  {bytes} bytes")),
        "text and --json disagree ({bytes}):\n{text}"
    );
}

#[test]
fn error_causes_are_printed_once() {
    let out = std::process::Command::new(BIN)
        .args(["check", "--config", "/nonexistent/churn-alert.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let cause = "No such file or directory";
    assert_eq!(err.matches(cause).count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_red_and_says_why_from_the_first_failed_poll() {
    let env = Env::new().await;
    let port = free_port();
    env.write_config(
        &env.managers_route(&["k1"]),
        &format!("{FAST}\n[server]\nlisten = \"127.0.0.1:{port}\"\nhealthy_poll_age = \"1h\"\n"),
    );
    // A wrong secret: every token request is refused.
    env.weiban.set_faults(WeibanFaults {
        rate: 1.0,
        bad_token: true,
        ..Default::default()
    });
    let mut child = spawn_quiet_run(&env.config);
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        assert!(Instant::now() < deadline, "/healthz never turned red");
        if let Ok(answer) = http_client()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap_or_default();
            if status == 503 {
                break body;
            }
            assert!(body.starts_with("starting"), "{status} {body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.start_kill();
    assert!(body.contains("failed"), "{body}");
    assert!(body.contains("10001"), "the errcode is named: {body}");
    assert!(!body.contains("sim-secret"), "{body}");
}

fn org(env: &Env) {
    let d = department;
    env.weiban.set_directory(
        vec![d(1, "公司", 0), d(2, "销售一部", 1), d(4, "销售二部", 1)],
        vec![
            staff("zhang", "张三", vec![2]),
            staff("li", "李四", vec![4]),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_lists_every_destination_and_preview_shows_department_robots() {
    let env = Env::new().await;
    org(&env);
    let routes = format!(
        "[[route]]\nname = \"teams\"\naudience = \"managers\"\nwecom_webhooks = [\"{}\"]\n[route.department_webhooks]\n\"销售一部\" = \"{}\"\n\"销售二部\" = \"{}\"\n[route.department_emails]\n\"销售二部\" = \"team2@example.com\"\n\n[[report]]\nname = \"weekly\"\ncron = \"0 9 * * 1\"\nperiod = \"week\"\nroute = \"teams\"\n",
        env.robot.url("k-all"),
        env.robot.url("k-team1"),
        env.robot.url("k-team2"),
    );
    env.write_config(
        &routes,
        &format!("{FAST}\n[smtp]\nhost = \"127.0.0.1\"\nport = 25\nsecurity = \"none\"\nfrom = \"a@example.com\"\n"),
    );
    let out = env.cmd(&["check"]).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("route `teams` (managers): 4 destination(s)"),
        "{err}"
    );
    for named in [
        "robot #1",
        "robot of department `销售一部`",
        "robot of department `销售二部`",
        "mailbox of department `销售二部` <team2@example.com>",
    ] {
        assert!(err.contains(named), "`{named}` missing: {err}");
    }
    assert!(
        err.contains("report `weekly` (0 9 * * 1) → route `teams`, 4 destination(s)"),
        "{err}"
    );
    assert!(
        !err.contains("k-team1"),
        "a robot key in check's output: {err}"
    );

    // The store saves the org chart on the first cycle; preview reads it from there.
    env.weiban
        .add_losses(&SimLoss::generate("预", 1, 1, now() - 60, 5));
    let _ = env.once().await;
    let out = env.cmd(&["preview", "--staff", "zhang"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("robot of department 2"), "{text}");
    assert!(!text.contains("robot of department 4"), "{text}");
    assert!(text.contains("张三"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_on_a_route_with_no_managers_destination_is_rejected() {
    let env = Env::new().await;
    let routes = format!(
        "[[route]]\nname = \"sales\"\naudience = \"staff\"\nstaff_webhooks = {{ zhang = \"{}\" }}\n\n[[report]]\nname = \"weekly\"\ncron = \"0 9 * * 1\"\nperiod = \"week\"\nroute = \"sales\"\n",
        env.robot.url("k-zhang"),
    );
    env.write_config(&routes, FAST);
    let out = env.cmd(&["check"]).await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("report `weekly`") && err.contains("route `sales`"),
        "{err}"
    );
    let alert = format!(
        "[[route]]\nname = \"sales\"\naudience = \"staff\"\nstaff_delete_alert = 3\nstaff_webhooks = {{ zhang = \"{}\" }}\n",
        env.robot.url("k-zhang"),
    );
    env.write_config(&alert, FAST);
    let out = env.cmd(&["check"]).await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("route `sales`") && err.contains("staff_delete_alert"),
        "{err}"
    );
}
