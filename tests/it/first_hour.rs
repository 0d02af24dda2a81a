//! Issue 13's acceptance: messages that never misstate who left, truthful numbers, and the
//! first hour of a new operator.

use crate::common::*;
use churn_alert_sim::SimLoss;
use serde_json::{json, Value};

/// The documented example item, as a loss `customer` that left `ago` seconds ago, with
/// `relation` merged into its `staff_relation`.
fn item(customer: &str, staff: (&str, &str), ago: i64, relation: Value) -> Value {
    let mut item: Value = serde_json::from_str::<Value>(churn_alert_sim::OUTFLOW_EXAMPLE).unwrap()
        ["external_user_list"][0]
        .clone();
    item["id"] = json!(format!("wm_{customer}"));
    item["name"] = json!(customer);
    item["outflow_at"] = json!(now() - ago);
    item["staff"]["id"] = json!(staff.0);
    item["staff"]["name"] = json!(staff.1);
    let rel = item["staff_relation"].as_object_mut().unwrap();
    rel.remove("delete_by");
    rel.insert("remark".into(), json!(customer));
    if let Value::Object(extra) = relation {
        for (k, v) in extra {
            rel.insert(k, v);
        }
    }
    item
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_directions_are_never_blamed_on_the_salesperson() {
    let env = Env::new().await;
    let routes = format!(
        "{}\n[[route]]\nname = \"sales\"\naudience = \"staff\"\ndelete_by = \"customer\"\nwecom_webhooks = [\"{}\"]\n",
        env.managers_route(&["k1"]),
        env.robot.url("k-sales")
    );
    env.write_config(&routes, FAST);
    let wang = ("wang", "王芳");
    let mut dropped_relation = item("无关系", wang, 70, json!({}));
    dropped_relation
        .as_object_mut()
        .unwrap()
        .remove("staff_relation");
    env.weiban.add_raw(vec![
        item("客户走了", wang, 10, json!({"delete_by": "external_user"})),
        item("员工删的", wang, 20, json!({"delete_by": "staff"})),
        item("互删了", wang, 30, json!({"deleted_each_other": true})),
        item("空值", wang, 40, json!({"delete_by": null})),
        item("怪值", wang, 50, json!({"delete_by": "robot_cleanup"})),
        item("缺字段", wang, 60, json!({})),
        dropped_relation,
    ]);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));

    let digest = env
        .robot
        .received()
        .into_iter()
        .filter(|m| m.key == "k1")
        .map(|m| m.content)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        digest.contains("客户删除员工 1 · 员工删除客户 1 · 互删 1 · 未知 4"),
        "{digest}"
    );
    assert!(digest.contains("统计区间："), "{digest}");
    // One wording for the directions (issue 23's glossary): the summary line and each entry.
    assert_eq!(digest.matches("员工删除客户").count(), 2, "{digest}");
    assert_eq!(digest.matches("· 未知").count(), 5, "{digest}");
    assert_eq!(digest.matches("· 互删").count(), 2, "{digest}");
    for old in ["员工删除了客户", "原因未知", "双方互删", "客户删除了员工"] {
        assert!(!digest.contains(old), "{old}: {digest}");
    }

    let staff: Vec<String> = env
        .robot
        .received()
        .into_iter()
        .filter(|m| m.key == "k-sales")
        .map(|m| m.content)
        .collect();
    let staff = staff.join("\n");
    assert!(staff.contains("客户走了"), "{staff}");
    for other in ["员工删的", "互删了", "空值", "怪值", "缺字段", "无关系"] {
        assert!(
            !staff.contains(other),
            "{other} is not a customer's deletion: {staff}"
        );
    }
    assert!(staff.contains("请及时跟进挽回"), "{staff}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_known_count_from_createtime_and_namesakes_show_their_userid() {
    let env = Env::new().await;
    let day = 86_400;
    let outflow = now() - 10;
    env.weiban.add_raw(vec![
        item(
            "老客户",
            ("zhangwei", "张伟"),
            10,
            json!({"delete_by": "external_user", "createtime": outflow - 100 * day, "created_at": outflow - 3 * day, "add_way": 3, "state": "wb:c:9:618"}),
        ),
        item(
            "另一位",
            ("zhangwei2", "张伟"),
            20,
            json!({"delete_by": "external_user", "createtime": null, "created_at": outflow - 5 * day}),
        ),
    ]);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = all_text(&env.robot);
    assert!(text.contains("相识 100 天"), "from createtime: {text}");
    assert!(
        text.contains("相识 4 天"),
        "falls back to created_at: {text}"
    );
    assert!(
        text.contains("名片分享") && text.contains("渠道 wb:c:9:618"),
        "{text}"
    );
    assert!(
        text.contains("张伟（zhangwei）") && text.contains("张伟（zhangwei2）"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_routes_filter_by_several_directions() {
    let env = Env::new().await;
    let route = format!(
        "[[route]]\nname = \"care\"\naudience = \"managers\"\ndelete_by = [\"customer\", \"unknown\"]\nwecom_webhooks = [\"{}\"]\n",
        env.robot.url("k1")
    );
    env.write_config(&route, FAST);
    let losses = SimLoss::generate("向", 4, 1, now() - 60, 5);
    env.weiban.add_losses(&losses);
    env.weiban.add_raw(vec![item(
        "不明",
        ("li", "李雷"),
        30,
        json!({"delete_by": null}),
    )]);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = all_text(&env.robot);
    assert!(text.contains("不明"), "unknown passes: {text}");
    for loss in &losses {
        // Even-numbered generated losses are the customer's deletions.
        let wanted = loss.deleted_by_customer;
        assert_eq!(
            text.contains(&loss.customer_name),
            wanted,
            "{}",
            loss.customer_name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_names_wrong_credentials_and_reports_what_it_found() {
    let env = Env::new().await;
    env.weiban
        .add_losses(&SimLoss::generate("查", 3, 1, now() - 60, 5));
    let out = env.cmd(&["check", "--online"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains("access token ok; 3 lost customer(s)"),
        "{shown}"
    );
    assert!(shown.contains("查客户00000号"), "the newest loss: {shown}");
    assert_eq!(
        env.weiban.stats().outflow_requests,
        1,
        "one outflow request"
    );

    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace("${TEST_WEIBAN_SECRET}", "wrong-secret"),
    )
    .unwrap();
    let out = env.cmd(&["check", "--online"]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("weiban.corp_id") && err.contains("weiban.secret"),
        "{err}"
    );
    assert!(!err.contains("wrong-secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_reaches_every_robot_and_names_the_route_of_a_refusal() {
    let env = Env::new().await;
    let smtp = crate::common::smtp::SmtpServer::start();
    let routes = format!(
        "{}email_to = [\"boss@example.com\"]\n",
        env.managers_route(&["good-key", "secret-bad-key"])
    );
    env.write_config(&routes, &format!("{FAST}\n{}", smtp.config()));
    env.robot.set_removed("secret-bad-key", true);
    let out = env.cmd(&["check", "--online", "--send-test"]).await;
    assert!(!out.status.success(), "a refusing robot fails the check");
    let shown = format!("{}{}", stdout(&out), stderr(&out));
    assert!(shown.contains("route `managers`, robot #2"), "{shown}");
    assert!(
        shown.contains("REFUSED") && shown.contains("93000"),
        "{shown}"
    );
    assert!(!shown.contains("secret-bad-key"), "the key leaked: {shown}");
    let received = env.robot.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].key, "good-key");
    assert!(
        received[0].content.contains("churn-alert 测试消息")
            && received[0].content.contains("managers")
    );
    assert_eq!(smtp.mails().len(), 1, "the email address got one too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_without_an_email_address_are_skipped_visibly_not_failed_forever() {
    let env = Env::new().await;
    let smtp = crate::common::smtp::SmtpServer::start();
    let route = format!(
        "[[route]]\nname = \"sales\"\naudience = \"staff\"\nemail_staff = true\nwecom_webhooks = [\"{}\"]\n",
        env.robot.url("k1")
    );
    env.write_config(&route, &format!("{FAST}\n{}", smtp.config()));
    let mut losses = SimLoss::generate("邮", 4, 2, now() - 60, 5);
    for loss in losses.iter_mut().filter(|l| l.staff_id == "staff01") {
        loss.staff_email = String::new();
    }
    env.weiban.add_losses(&losses);
    for _ in 0..2 {
        let out = env.once().await;
        assert!(
            out.status.success(),
            "not a failure of every cycle: {}",
            stderr(&out)
        );
    }
    assert_eq!(smtp.mails().len(), 1, "only staff00 has an address");
    for loss in &losses {
        assert!(
            all_text(&env.robot).contains(&loss.customer_name),
            "the robot got them all"
        );
    }
    let pending = env.cmd(&["state", "pending"]).await;
    let shown = stdout(&pending);
    assert!(shown.contains("skipped"), "{shown}");
    assert!(
        shown.contains("staff01") && shown.contains("staff_emails"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_reads_through_the_daemon_and_sighup_retries_a_fixed_robot_at_once() {
    let env = Env::new().await;
    let port = free_port();
    let server = format!("{FAST}\n[server]\nlisten = \"127.0.0.1:{port}\"\n");
    env.write_config(&env.managers_route(&["bad-key"]), &server);
    env.robot.set_removed("bad-key", true);
    let losses = SimLoss::generate("热", 3, 1, now() - 60, 5);
    env.weiban.add_losses(&losses);
    let mut child = spawn_quiet_run(&env.config);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while env.robot.attempts().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never tried the robot"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // While it holds the store, state comes through its [server].
    let stats = env.cmd(&["state", "stats"]).await;
    assert!(stats.status.success(), "{}", stderr(&stats));
    // Robots are known by the fingerprint of their key (issue 18), never by position.
    let robot =
        churn_alert::destination::DestinationId::robot("managers", &env.robot.url("bad-key"));
    assert!(
        stdout(&stats).contains(&format!("{robot}: 3")),
        "{}",
        stdout(&stats)
    );
    let pending = env.cmd(&["state", "pending"]).await;
    assert!(
        stdout(&pending).contains("3 pending, failed"),
        "{}",
        stdout(&pending)
    );

    // The URL is fixed in the config; SIGHUP, and it is retried without `state retry`.
    env.write_config(&env.managers_route(&["good-key"]), &server);
    let pid = child.id().expect("running");
    std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !env.robot.received().iter().any(|m| m.key == "good-key") {
        assert!(
            std::time::Instant::now() < deadline,
            "not retried after SIGHUP"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.start_kill();
    let text = all_text(&env.robot);
    for loss in &losses {
        assert!(text.contains(&loss.customer_name), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_things_plain_logs_with_offsets_and_dry_runs_that_create_nothing() {
    let env = Env::new().await;
    env.weiban
        .add_losses(&SimLoss::generate("试", 2, 1, now() - 60, 5));
    let out = env.cmd(&["once", "--dry-run"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("试客户00000号"), "{}", stdout(&out));
    assert!(!env.store_path().exists(), "a dry run created the store");

    let out = env.once().await;
    let log = stderr(&out);
    assert!(!log.contains('\u{1b}'), "colours in a pipe: {log:?}");
    let first = log.lines().next().unwrap_or_default();
    let stamp = first.split_whitespace().next().unwrap_or_default();
    let parsed = chrono::DateTime::parse_from_rfc3339(stamp)
        .unwrap_or_else(|e| panic!("`{stamp}` is not RFC 3339 with an offset: {e}"));
    assert_eq!(parsed.offset().local_minus_utc(), 8 * 3600, "{first}");
    assert!(
        log.contains("window=2"),
        "window bounds carry the year: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_names_routes_and_robots_and_ends_with_the_next_commands() {
    let out = tokio::process::Command::new(BIN)
        .arg("demo")
        .output()
        .await
        .expect("run demo");
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("路由 managers（经理汇总）→ 群机器人 `demo-managers`"),
        "{text}"
    );
    // Two corps, the second's digest under its own heading, from its own robot.
    assert!(
        text.contains("━━ 企业 hq（总部）━━")
            && text.contains("━━ 企业 brand-b")
            && text.contains("群机器人 `brand-b-managers` 收到消息")
            && text.contains(
                "企业 brand-b：群机器人 `brand-b-managers`（路由 managers）：1 条，新增流失 3 条"
            ),
        "{text}"
    );
    assert!(
        text.contains("（4 位员工）") && text.contains("涉及 4 位员工"),
        "{text}"
    );
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.contains("churn-alert run --config config.toml"),
        "{last}"
    );
    assert!(
        text.contains("churn-alert check --config config.toml"),
        "{text}"
    );
    // The README's minimal config is what the first test message needs: the example's
    // sample robots and mailboxes would make `--send-test` fail.
    assert!(
        text.contains("从零到第一条测试消息") && !text.contains("cp config.example.toml"),
        "{text}"
    );
}
