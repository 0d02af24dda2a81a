//! Issue 5's acceptance: quiet hours, graceful shutdown, metrics and health, redacted logs,
//! backfill and dry runs, no overlapping cycles.

use std::time::{Duration, Instant};

use crate::common::smtp::SmtpServer;
use crate::common::*;
use chrono::{Timelike, Utc};
use churn_alert_sim::{RobotFaults, SimLoss, WeibanFaults};

// Under paused time: the daemon runs in this process, and the minute of quiet passes at once.
#[tokio::test(start_paused = true)]
async fn quiet_hours_hold_deliveries_then_send_one_digest() {
    let env = Env::new().await;
    let wall = || churn_alert::time::now_utc().with_timezone(&chrono_tz::Asia::Shanghai);
    // Quiet from this minute to the next, in Asia/Shanghai; leave at least 15 s of quiet.
    let mut local = wall();
    if local.second() > 45 {
        tokio::time::sleep(Duration::from_secs(61 - u64::from(local.second()))).await;
        local = wall();
    }
    let end = local + chrono::Duration::minutes(1);
    let spec = format!("{}-{}", local.format("%H:%M"), end.format("%H:%M"));
    add_to_schedule(&env.config, &format!("quiet_hours = \"{spec}\""));

    let first = SimLoss::generate("静一", 5, 2, crate::common::now() - 30, 1);
    env.weiban.add_losses(&first);
    let (stop, daemon) = env.run_in_process();
    let second = SimLoss::generate("静二", 5, 2, crate::common::now() + 3, 1);
    let steps = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        env.weiban.add_losses(&second);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            env.robot.attempts().is_empty(),
            "sent during quiet hours {spec}"
        );
        let deadline = Instant::now() + Duration::from_secs(75);
        while env.robot.received().is_empty() {
            assert!(
                Instant::now() < deadline,
                "nothing sent after the quiet hours {spec} ended"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.trigger();
    };
    let (output, ()) = tokio::join!(daemon, steps);
    let received = env.robot.received();
    assert_eq!(received.len(), 1, "one merged digest, not one per poll");
    for loss in first.iter().chain(&second) {
        assert!(
            received[0].content.contains(&loss.customer_name),
            "{}",
            received[0].content
        );
    }
    assert!(output.stderr.contains("quiet hours"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_send_exits_0_quickly_and_nothing_is_lost() {
    let env = Env::new().await;
    let losses = SimLoss::generate("停", 8, 2, crate::common::now() - 30, 1);
    env.weiban.add_losses(&losses);
    env.robot.set_latency(Duration::from_secs(60));
    let child = spawn_run(&env.config, "churn_alert=debug");
    // The first cycle polls, records and starts sending within a couple of seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopped = Instant::now();
    sigterm(&child);
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exit within 10 s of SIGTERM")
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit status {:?}\n{log}",
        output.status
    );
    assert!(stopped.elapsed() < Duration::from_secs(10));
    assert!(log.contains("store is flushed"), "{log}");

    env.robot.set_latency(Duration::ZERO);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = all_text(&env.robot);
    for loss in &losses {
        assert!(
            text.contains(&loss.customer_name),
            "{} lost",
            loss.customer_name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_answer_and_move() {
    let env = Env::new().await;
    let port = free_port();
    let extra =
        format!("{FAST}\n[server]\nlisten = \"127.0.0.1:{port}\"\nhealthy_poll_age = \"3s\"\n");
    env.write_config(&env.managers_route(&["k1"]), &extra);
    env.weiban
        .add_losses(&SimLoss::generate("量", 5, 1, crate::common::now() - 30, 1));
    let child = spawn_run(&env.config, "churn_alert=info");
    let base = format!("http://127.0.0.1:{port}");
    let http = http_client();
    let get = |path: &str| {
        let request = http.get(format!("{base}{path}"));
        async move {
            let response = request.send().await.ok()?;
            let status = response.status().as_u16();
            Some((status, response.text().await.ok()?))
        }
    };
    let counter = |text: &str, name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };

    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        if let Some((200, text)) = get("/metrics").await {
            if counter(&text, "churn_alert_cycles_total") >= 1.0 {
                break text;
            }
        }
        assert!(Instant::now() < deadline, "no metrics after 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        counter(&first, "churn_alert_messages_sent_total") >= 1.0,
        "{first}"
    );
    assert!(
        first.contains("churn_alert_last_successful_poll_timestamp_seconds"),
        "{first}"
    );
    let (status, body) = get("/healthz").await.expect("healthz answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ok"), "{body}");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, later) = get("/metrics").await.expect("metrics answer");
    assert!(
        counter(&later, "churn_alert_cycles_total") > counter(&first, "churn_alert_cycles_total"),
        "cycles did not move:\n{later}"
    );

    // Weiban breaks: health turns red once the last good poll is older than 3 s.
    env.weiban.set_faults(WeibanFaults {
        rate: 1.0,
        server_error: true,
        ..Default::default()
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get("/healthz").await.expect("healthz answers");
        if status == 503 {
            assert!(body.contains("last successful poll"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "health never turned red");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (_, broken) = get("/metrics").await.expect("metrics answer");
    assert!(
        broken.contains("churn_alert_weiban_errors_total"),
        "{broken}"
    );
    // Every metric the shipped dashboard and alert rules read exists after a cycle.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut named = std::collections::BTreeSet::new();
    for file in [
        "deploy/grafana/churn-alert.json",
        "deploy/prometheus/churn-alert.rules.yml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).expect("shipped file");
        named.extend(metric_names(&text));
    }
    assert!(named.len() >= 10, "{named:?}");
    let exported = metric_names(&broken);
    let missing: Vec<&String> = named.difference(&exported).collect();
    assert!(missing.is_empty(), "not exported: {missing:?}\n{broken}");
    sigterm(&child);
    let _ = child.wait_with_output().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_trace_level_logs() {
    let env = Env::new().await;
    let smtp = SmtpServer::start();
    let robot_key = "robot-key-7f3c9a";
    let routes = format!(
        "[[route]]\nname = \"managers\"\naudience = \"managers\"\nwecom_webhooks = [\"{}\"]\nemail_to = [\"boss@example.com\"]\n",
        env.robot.url(robot_key)
    );
    let smtp_config = smtp.config().replace(
        "timeout",
        "username = \"alerts\"\npassword = \"smtp-pass-5e1d\"\ntimeout",
    );
    env.write_config(&routes, &format!("{FAST}\n{smtp_config}"));
    env.weiban.add_losses(&SimLoss::generate(
        "密",
        20,
        2,
        crate::common::now() - 30,
        1,
    ));
    // First a cycle where every Weiban request fails (each kind of fault in turn, retried until
    // the client gives up), then cycles that succeed, through a robot that refuses now and then.
    env.weiban
        .set_faults(WeibanFaults::all(1.0, Duration::from_millis(1500)));
    env.robot.set_faults(RobotFaults {
        busy: 0.3,
        ..Default::default()
    });
    let mut log = String::new();
    for round in 0..3 {
        if round == 1 {
            env.weiban.set_faults(WeibanFaults::default());
        }
        let mut command = tokio::process::Command::new(BIN);
        command
            .args(["--log-format", "text", "once", "--config"])
            .arg(&env.config)
            .env("TEST_WEIBAN_SECRET", "sim-secret")
            .env("RUST_LOG", "trace");
        let out = command.output().await.unwrap();
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        log.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    assert!(log.contains("TRACE"), "trace level was not on");
    assert!(
        env.weiban.stats().faults.values().sum::<u64>() > 0,
        "no fault injected"
    );
    for secret in ["sim-secret", robot_key, "smtp-pass-5e1d", "simtoken-"] {
        assert!(!log.contains(secret), "`{secret}` leaked into the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_mark_only_remembers_without_reporting() {
    let env = Env::new().await;
    let now = crate::common::now();
    let history = SimLoss::generate("史", 30, 3, now - 3600, 2 * 3600);
    env.weiban.add_losses(&history);
    let since = (Utc::now() - chrono::Duration::days(4))
        .format("%Y-%m-%d")
        .to_string();
    let out = env
        .cmd(&["backfill", "--since", &since, "--mark-only"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("30 new remembered"),
        "{}",
        stdout(&out)
    );
    assert!(env.robot.attempts().is_empty());

    let fresh = SimLoss::generate("新", 3, 1, crate::common::now() - 10, 1);
    env.weiban.add_losses(&fresh);
    let dry = env.cmd(&["once", "--dry-run"]).await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    let plan = stdout(&dry);
    assert!(
        fresh.iter().all(|l| plan.contains(&l.customer_name)),
        "{plan}"
    );
    assert!(
        history.iter().all(|l| !plan.contains(&l.customer_name)),
        "{plan}"
    );
    assert!(env.robot.attempts().is_empty(), "a dry run sent something");

    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = all_text(&env.robot);
    assert!(
        fresh.iter().all(|l| text.contains(&l.customer_name)),
        "{text}"
    );
    assert!(
        history.iter().all(|l| !text.contains(&l.customer_name)),
        "history reported: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_reports_history_in_windows() {
    let env = Env::new().await;
    let history = SimLoss::generate("往", 40, 4, crate::common::now() - 600, 3 * 3600);
    env.weiban.add_losses(&history);
    let since = (Utc::now() - chrono::Duration::days(6)).to_rfc3339();
    let out = env
        .cmd(&["backfill", "--since", &since, "--window", "12h"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("backfill window done"),
        "plain progress lines off a terminal"
    );
    let text = all_text(&env.robot);
    for loss in &history {
        assert_eq!(
            text.matches(&loss.customer_name).count(),
            1,
            "{}",
            loss.customer_name
        );
    }
}

// Under paused time, so that "8 s" is 8 s whatever the machine's load.
#[tokio::test(start_paused = true)]
async fn a_cycle_that_overruns_skips_the_due_runs_with_a_log_line() {
    let env = Env::new().await;
    // Every page takes 1.5 s: every cycle outlasts the 1 s schedule.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace("request_timeout = \"1s\"", "request_timeout = \"5s\""),
    )
    .unwrap();
    env.weiban.set_latency(Duration::from_millis(1500));
    let (stop, daemon) = env.run_in_process();
    let steps = async {
        tokio::time::sleep(Duration::from_secs(8)).await;
        stop.trigger();
    };
    let (output, ()) = tokio::join!(daemon, steps);
    let log = output.stderr;
    assert!(log.contains("overran"), "{log}");
    let cycles = log.matches("cycle done").count();
    assert!(
        (2..=4).contains(&cycles),
        "{cycles} cycles in 8 s of 1.5 s polls: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let env = Env::new().await;
    env.weiban
        .add_losses(&SimLoss::generate("录", 2, 1, crate::common::now() - 30, 1));
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(["--log-format", "json", "once", "--config"])
        .arg(&env.config)
        .env("TEST_WEIBAN_SECRET", "sim-secret")
        .env("RUST_LOG", "churn_alert=info");
    let out = command.output().await.unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    let cycle = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON object per line"))
        .find(|v| v["message"] == "cycle done")
        .expect("a cycle line");
    assert_eq!(cycle["new_losses"], 2);
    assert_eq!(cycle["messages_sent"], 1);
}

/// The `churn_alert_*` names in a text.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("churn_alert_"))
        .map(str::to_owned)
        .collect()
}
