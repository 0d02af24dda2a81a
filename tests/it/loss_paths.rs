//! Issue 9's acceptance: every loss and repeat path an adversarial review found, closed.
//! Each test reproduces the reviewer's setup against the real binary over loopback.

use std::time::Duration;

use crate::common::*;
use churn_alert_sim::{SimLoss, WeibanSimOptions};

/// How often each loss's customer name appears in what `key` accepted.
fn times_delivered(env: &Env, key: &str, loss: &SimLoss) -> usize {
    env.robot
        .received()
        .iter()
        .filter(|m| m.key == key)
        .map(|m| m.content.matches(&loss.customer_name).count())
        .sum()
}

fn undelivered<'a>(env: &Env, key: &str, losses: &'a [SimLoss]) -> Vec<&'a str> {
    losses
        .iter()
        .filter(|l| times_delivered(env, key, l) == 0)
        .map(|l| l.customer_name.as_str())
        .collect()
}

/// Item 1: a loss that lands while pages are fetched in parallel shifts the list; the page
/// answered before it and its neighbour answered after it must not skip an item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item01_a_late_record_while_paging_in_parallel_skips_nothing() {
    let env = Env::new().await;
    let route = env.managers_route(&["k1"]) + "storm_threshold = 0\n";
    env.write_config(&route, FAST);
    let losses = SimLoss::generate("甲", 300, 10, now() - 120, 60);
    env.weiban.add_losses(&losses);
    let late = SimLoss::generate("迟", 1, 1, now() - 30, 1);
    env.weiban
        .insert_while_paging(100, Duration::from_millis(500), late.clone());

    for _ in 0..2 {
        let out = env.once().await;
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let all: Vec<SimLoss> = losses.iter().chain(&late).cloned().collect();
    let missing = undelivered(&env, "k1", &all);
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    assert_eq!(
        times_delivered(&env, "k1", &losses[199]),
        1,
        "the 200th-newest loss, on the shifted page boundary"
    );
}

/// Item 1, same-second ordering: Weiban's order within one second is not stable, so a second
/// that straddles a page boundary can show one item on both pages and another on neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item01_items_of_one_second_across_a_page_boundary_are_all_fetched() {
    let env = Env::with_options(WeibanSimOptions {
        shuffle_same_second: true,
        ..Default::default()
    })
    .await;
    let route = env.managers_route(&["k1"]) + "storm_threshold = 0\n";
    env.write_config(&route, FAST);
    let newest = now() - 60;
    let mut losses = SimLoss::generate("秒", 250, 10, newest, 1);
    for (i, loss) in losses.iter_mut().enumerate() {
        // Three losses a second: seconds 33 and 66 straddle the boundaries at 100 and 200.
        loss.outflow_at = newest - (i / 3) as i64;
    }
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let missing = undelivered(&env, "k1", &losses);
    assert!(missing.is_empty(), "never delivered: {missing:?}");
}

/// Item 2: an answer without `total_count` is not "0 more".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item02_a_missing_total_count_pages_on_until_a_short_page() {
    let env = Env::with_options(WeibanSimOptions {
        omit_total_count: true,
        ..Default::default()
    })
    .await;
    let route = env.managers_route(&["k1"]) + "storm_threshold = 0\n";
    env.write_config(&route, FAST);
    let losses = SimLoss::generate("乙", 250, 10, now() - 60, 30);
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let missing = undelivered(&env, "k1", &losses);
    assert!(
        missing.is_empty(),
        "{} never delivered, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    assert!(
        env.weiban.stats().outflow_requests >= 3,
        "250 losses need 3 pages at least"
    );
}

/// Item 3: a backfill that starts after the live window's end leaves the gap to the next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item03_backfill_since_yesterday_does_not_skip_the_days_before() {
    let env = Env::new().await;
    let route = env.managers_route(&["k1"]) + "storm_threshold = 0\n";
    env.write_config(&route, FAST);
    let day = 86_400;
    // Stopped five days ago: that window was fetched whole.
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    set_window_end(&env.store_path(), now() - 5 * day);
    // One loss every 6 hours over the last 4.5 days: all of them after the live window.
    let losses = SimLoss::generate("缺", 18, 3, now() - 600, 6 * 3600);
    env.weiban.add_losses(&losses);
    let yesterday = (chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai)
        - chrono::Duration::days(1))
    .format("%Y-%m-%d")
    .to_string();

    let out = env.cmd(&["backfill", "--since", &yesterday]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("live window still ends"),
        "{}",
        stderr(&out)
    );
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let missing = undelivered(&env, "k1", &losses);
    assert!(missing.is_empty(), "never requested: {missing:?}");
    for loss in &losses {
        assert_eq!(
            times_delivered(&env, "k1", loss),
            1,
            "{}",
            loss.customer_name
        );
    }
}

fn staff_route(env: &Env, robots: &[(&str, &str)]) -> String {
    let robots: Vec<String> = robots
        .iter()
        .map(|(staff, key)| format!("{staff} = \"{}\"", env.robot.url(key)))
        .collect();
    format!(
        "[[route]]\nname = \"sales\"\naudience = \"staff\"\nstorm_threshold = 0\nstaff_webhooks = {{ {} }}\n",
        robots.join(", ")
    )
}

/// Item 4: pending losses whose destination left the config, with no other destination of
/// their kind on the route, stay pending and visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item04_removing_the_last_destination_keeps_its_backlog_pending_and_visible() {
    let env = Env::new().await;
    env.write_config(
        &staff_route(&env, &[("staff00", "k-zhang"), ("staff01", "k-li")]),
        FAST,
    );
    env.robot.set_removed("k-li", true);
    let losses = SimLoss::generate("丢", 6, 2, now() - 60, 5);
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(!out.status.success(), "k-li refuses: {}", stderr(&out));

    env.write_config(&staff_route(&env, &[("staff00", "k-zhang")]), FAST);
    let out = env.once().await;
    assert!(
        !out.status.success(),
        "stranded losses are not a clean exit"
    );
    let err = stderr(&out);
    assert!(
        err.contains("route `sales`")
            && err.contains("state drop --destination sales/staff-wecom/staff01"),
        "{err}"
    );
    let stats = env.cmd(&["state", "stats"]).await;
    assert!(
        stdout(&stats).contains("sales/staff-wecom/staff01: 3"),
        "{}",
        stdout(&stats)
    );
    let pending = env.cmd(&["state", "pending"]).await;
    let shown = stdout(&pending);
    assert!(shown.contains("3 pending, stranded"), "{shown}");
    for loss in losses.iter().filter(|l| l.staff_id == "staff01") {
        assert!(shown.contains(&loss.customer_name), "{shown}");
    }

    // A running daemon says so on /healthz.
    let port = free_port();
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(&format!("\n[server]\nlisten = \"127.0.0.1:{port}\"\n"));
    std::fs::write(&env.config, config).unwrap();
    let mut child = spawn_quiet_run(&env.config);
    let mut body = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(answer) = http_client()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            body = answer.text().await.unwrap_or_default();
            if body.starts_with("degraded") {
                break;
            }
        }
    }
    let _ = child.start_kill();
    assert!(body.starts_with("degraded: 3 loss(es)"), "{body}");
}

/// Item 5: removing a refusing robot moves only what no remaining robot of the route has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item05_removing_a_refusing_robot_resends_nothing_to_the_robots_that_have_it() {
    let env = Env::new().await;
    let route = env.managers_route(&["kA", "kB"]) + "storm_threshold = 0\n";
    env.write_config(&route, FAST);
    env.robot.set_removed("kB", true);
    let losses = SimLoss::generate("重", 8, 2, now() - 60, 5);
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(!out.status.success());

    let route = env.managers_route(&["kA"]) + "storm_threshold = 0\n";
    env.write_config(&route, FAST);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    for loss in &losses {
        assert_eq!(
            times_delivered(&env, "kA", loss),
            1,
            "{}",
            loss.customer_name
        );
    }
    let stats = env.cmd(&["state", "stats"]).await;
    assert!(
        stdout(&stats).contains("pending deliveries:  none"),
        "{}",
        stdout(&stats)
    );
}

/// Item 6: a staff id with a NUL in it must not make the same email go out every cycle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item06_a_nul_in_a_staff_id_does_not_resend_the_same_email_every_cycle() {
    let env = Env::new().await;
    let smtp = crate::common::smtp::SmtpServer::start();
    let routes = "[[route]]\nname = \"mail\"\naudience = \"staff\"\nemail_staff = true\n";
    env.write_config(routes, &format!("{FAST}\n{}", smtp.config()));
    let mut losses = SimLoss::generate("零", 2, 1, now() - 60, 5);
    for loss in &mut losses {
        loss.staff_id = "zhang\0san".into();
    }
    env.weiban.add_losses(&losses);
    for _ in 0..3 {
        let out = env.once().await;
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(smtp.mails().len(), 1, "one email, not one per cycle");
}

/// Item 7: a heading too large for one message is shortened; the entries stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item07_an_oversized_heading_never_costs_the_entries() {
    let env = Env::new().await;
    let mut losses = SimLoss::generate("巨", 3, 1, now() - 60, 5);
    for loss in &mut losses {
        loss.staff_name = "超".repeat(3000);
    }
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    for message in env.robot.received() {
        assert!(message.content.len() <= 4096);
    }
    for loss in &losses {
        assert_eq!(
            times_delivered(&env, "k1", loss),
            1,
            "{} not in a message",
            loss.customer_name
        );
    }
}

/// Item 8: a backfill and an outage catch-up are not one poll for storm protection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item08_a_backfill_or_catch_up_is_not_summarised_as_one_storm() {
    let env = Env::new().await;
    // 150 losses of one staff member over three days: a backlog, not a storm (threshold 100).
    let losses = SimLoss::generate("补", 150, 1, now() - 600, 1700);
    env.weiban.add_losses(&losses);
    let since = (chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai)
        - chrono::Duration::days(4))
    .format("%Y-%m-%d")
    .to_string();
    let out = env.cmd(&["backfill", "--since", &since]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = all_text(&env.robot);
    assert!(!text.contains("另有"), "a backfill summarised as a storm");
    assert!(undelivered(&env, "k1", &losses).is_empty());

    // The same through a daemon that was down for three days.
    let env = Env::new().await;
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    set_window_end(&env.store_path(), now() - 4 * 86_400);
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !all_text(&env.robot).contains("另有"),
        "a catch-up summarised as a storm"
    );
    assert!(undelivered(&env, "k1", &losses).is_empty());
}

/// Item 8: what a failing poll recorded goes out in the same cycle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item08_losses_of_a_failed_poll_are_delivered_in_the_same_cycle() {
    let env = Env::new().await;
    let route = env.managers_route(&["k1"]) + "storm_threshold = 0\n";
    env.write_config(&route, FAST);
    let losses = SimLoss::generate("败", 150, 5, now() - 60, 10);
    env.weiban.add_losses(&losses);
    env.weiban.fail_at_offset(Some(100));
    let out = env.once().await;
    assert!(!out.status.success(), "the poll failed");
    let missing = undelivered(&env, "k1", &losses[..100]);
    assert!(missing.is_empty(), "recorded but not sent: {missing:?}");
}

/// Item 9: `text` messages: no forged lines, no mentions, no links, and `mentioned_list`
/// holds validated staff ids only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item09_text_messages_neutralise_lines_mentions_and_links() {
    let env = Env::new().await;
    let route = format!(
        "[[route]]\nname = \"sales\"\naudience = \"staff\"\nmention = true\nwecom_msgtype = \"text\"\nwecom_webhooks = [\"{}\"]\n",
        env.robot.url("k1")
    );
    env.write_config(&route, FAST);
    let mut losses = SimLoss::generate("文", 4, 2, now() - 60, 5);
    losses[0].customer_name = "好客户\n- 伪造条目 已处理".into();
    losses[1].customer_name = "<@all> 看这里".into();
    losses[2].customer_name = "http://evil.example www.evil.example".into();
    losses[3].remark = Some("mailto:x@evil.example".into());
    for loss in &mut losses[1..] {
        if loss.staff_id == "staff01" {
            loss.staff_id = "@all".into();
        }
    }
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let received = env.robot.received();
    assert!(!received.is_empty());
    for message in &received {
        let c = &message.content;
        assert!(!c.contains("\n- 伪造条目"), "forged line: {c}");
        for needle in ["<@all>", "http://", "www.evil", "mailto:"] {
            assert!(!c.contains(needle), "{needle} in {c}");
        }
        assert!(
            message.mentioned.iter().all(|m| m == "staff00"),
            "mentioned {:?}",
            message.mentioned
        );
    }
    assert!(received.iter().any(|m| m.mentioned == ["staff00"]));
}

/// Item 10: markdown: `www.`, `mailto:`, links split by invisible characters, bidi overrides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item10_markdown_neutralises_hidden_links_and_bidi_overrides() {
    let env = Env::new().await;
    let mut losses = SimLoss::generate("链", 4, 1, now() - 60, 5);
    losses[0].customer_name = "www.evil.example".into();
    losses[1].customer_name = "mailto:x@evil.example".into();
    losses[2].customer_name = "http:\u{200b}//evil.example".into();
    losses[3].remark = Some("\u{202E}gnp.exe\u{2066}x\u{2069}".into());
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = all_text(&env.robot);
    for needle in [
        "www.", "mailto:", "http:", "\u{200b}", "\u{202E}", "\u{2066}", "\u{2069}",
    ] {
        assert!(!text.contains(needle), "{needle:?} in {text}");
    }
    assert!(
        text.contains("evil.example"),
        "the name is still shown: {text}"
    );
}

/// Item 11: `state pending` never sends a customer's escape sequences to the terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item11_state_pending_escapes_control_characters() {
    let env = Env::new().await;
    env.robot.set_removed("k1", true);
    let mut losses = SimLoss::generate("终", 1, 1, now() - 60, 5);
    losses[0].customer_name = "坏\u{1b}[2J\u{1b}]0;pwned\u{7}名".into();
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(!out.status.success());
    let pending = env.cmd(&["state", "pending"]).await;
    let shown = stdout(&pending);
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
        "{shown:?}"
    );
    assert!(shown.contains("坏\\u{1b}[2J"), "{shown}");
}

/// Item 8: quiet hours that begin while a pass is sending hold the rest, and say so.
// Under paused time: the wait for the minute boundary and the slow robot pass at once.
#[tokio::test(start_paused = true)]
async fn item08_quiet_hours_beginning_mid_send_hold_the_rest_and_say_so() {
    use chrono::Timelike;
    let env = Env::new().await;
    let route = format!(
        "[[route]]\nname = \"sales\"\naudience = \"staff\"\nwecom_webhooks = [\"{}\"]\n",
        env.robot.url("k1")
    );
    env.write_config(&route, FAST);
    env.robot.set_per_minute(None);
    env.robot.set_latency(Duration::from_millis(800));
    // 30 staff members: 30 messages, about 24 s of sending.
    let losses = SimLoss::generate("夜", 30, 30, now() - 60, 1);
    env.weiban.add_losses(&losses);
    // Start sending about 12 s before a minute boundary; quiet hours begin at it.
    let local = || churn_alert::time::now_utc().with_timezone(&chrono_tz::Asia::Shanghai);
    let second = local().second();
    let wait = if second <= 48 {
        48 - second
    } else {
        108 - second
    };
    tokio::time::sleep(Duration::from_secs(u64::from(wait))).await;
    let start = local() + chrono::Duration::seconds(30);
    let end = start + chrono::Duration::minutes(2);
    add_to_schedule(
        &env.config,
        &format!(
            "quiet_hours = \"{}-{}\"",
            start.format("%H:%M"),
            end.format("%H:%M")
        ),
    );

    let out = env.once_in_process().await;
    let err = out.stderr;
    assert_eq!(
        out.code,
        std::process::ExitCode::from(75),
        "held, not clean and not failed: {err}"
    );
    assert!(err.contains("held for quiet hours"), "{err}");
    let sent = env.robot.received().len();
    assert!(
        (1..30).contains(&sent),
        "{sent} messages sent: quiet hours began mid-send"
    );
    // In process too: `state pending` judges quiet hours on the same (paused) clock.
    let shown = env.in_process(&["state", "pending"]).await.stdout;
    assert!(
        shown.contains(&format!("{} pending, held for quiet hours", 30 - sent)),
        "{shown}"
    );
}
