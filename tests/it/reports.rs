//! Issue 12's acceptance: weekly reports counted from Weiban for exactly their period, with a
//! chart and the full list as a spreadsheet, sent once per period and destination; storm full
//! lists; the staff deletion alert.

use std::io::Cursor;
use std::time::Duration;

use crate::common::*;
use calamine::{Data, Reader, Xlsx};
use chrono::{NaiveDate, TimeZone};
use churn_alert_sim::{Received, SimLoss};
use mail_parser::MimeHeaders as _;
use md5::{Digest as _, Md5};

const WEEK: &str = "2026-11-16..2026-11-22";

fn shanghai_midnight(date: &str) -> i64 {
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    chrono_tz::Asia::Shanghai
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .timestamp()
}

fn loss(customer: &str, staff: &str, at: i64, by_customer: bool) -> SimLoss {
    SimLoss {
        customer_id: format!("wm_{customer}"),
        customer_name: customer.into(),
        remark: None,
        staff_id: staff.into(),
        staff_name: staff.to_uppercase(),
        staff_email: format!("{staff}@example.com"),
        outflow_at: at,
        deleted_by_customer: by_customer,
        tags: vec!["VIP".into()],
    }
}

/// The week 2026-11-16..22 with losses on both edges, inside, just outside, and in the week
/// before. Returns the names that belong to the week.
fn week_of_losses(env: &Env) -> Vec<String> {
    let start = shanghai_midnight("2026-11-16");
    let end = shanghai_midnight("2026-11-23") - 1;
    let inside = [
        loss("edge-first-second", "amy", start, true),
        loss("edge-last-second", "bob", end, false),
        loss("tuesday", "amy", start + 86_400 + 3_600, true),
        loss("thursday", "amy", start + 3 * 86_400, false),
        loss("saturday", "cat", start + 5 * 86_400 + 7, true),
    ];
    let outside = [
        loss("one-second-before", "amy", start - 1, true),
        loss("one-second-after", "bob", end + 1, true),
        loss("week-before-1", "bob", start - 3 * 86_400, true),
        loss("week-before-2", "bob", start - 4 * 86_400, false),
    ];
    env.weiban.add_losses(&inside);
    env.weiban.add_losses(&outside);
    inside.iter().map(|l| l.customer_name.clone()).collect()
}

fn report_config(env: &Env, robots: &[&str], extra_route: &str, extra: &str) {
    let route = env.managers_route(robots) + extra_route;
    let report = "[[report]]\nname = \"weekly\"\ncron = \"0 9 * * 1\"\nperiod = \"week\"\nroute = \"managers\"\n";
    env.write_config(&format!("{route}\n{report}"), &format!("{FAST}\n{extra}"));
}

/// `churn-alert report --name weekly --period WEEK` on the env's config.
async fn report_week(env: &Env) -> std::process::Output {
    env.cmd(&["report", "--name", "weekly", "--period", WEEK])
        .await
}

fn sheet_rows(bytes: &[u8], sheet: &str) -> Vec<Vec<String>> {
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes.to_vec())).expect("the XLSX opens");
    let range = book.worksheet_range(sheet).expect("the sheet exists");
    range
        .rows()
        .map(|row| {
            row.iter()
                .map(|cell| match cell {
                    Data::String(s) => s.clone(),
                    Data::Float(f) => f.to_string(),
                    Data::Int(i) => i.to_string(),
                    Data::Empty => String::new(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

fn by_type<'a>(received: &'a [Received], msgtype: &str) -> Vec<&'a Received> {
    received.iter().filter(|m| m.msgtype == msgtype).collect()
}

#[tokio::test]
async fn a_weekly_report_counts_exactly_its_week_with_a_chart_and_the_full_list() {
    let env = Env::new().await;
    let expected = week_of_losses(&env);
    report_config(&env, &["k1"], "", "");

    let out = report_week(&env).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let received = env.robot.received();
    assert_eq!(
        received
            .iter()
            .map(|m| m.msgtype.as_str())
            .collect::<Vec<_>>(),
        ["markdown", "image", "file"],
        "summary, chart, spreadsheet, in that order"
    );

    // The summary: 5 in the week (both edges once), 3 the week before (its last second too).
    let summary = &received[0].content;
    assert!(summary.contains("客户流失周报"), "{summary}");
    assert!(summary.contains("2026-11-16"), "{summary}");
    assert!(
        summary.contains("共流失 <font color=\"warning\">5</font> 位客户"),
        "{summary}"
    );
    assert!(
        summary.contains("客户删除员工 3，员工删除客户 2"),
        "{summary}"
    );
    assert!(
        summary.contains("较上周 +2（+67%，上周 3 位）"),
        "the week before had 3: {summary}"
    );
    assert!(summary.contains("AMY"), "{summary}");
    assert!(summary.contains("完整名单见附件"), "{summary}");

    // The chart: a PNG that decodes, with the md5 WeCom checks (the simulator checked it too).
    let png = received[1].image.as_ref().expect("an image message");
    let decoder = png::Decoder::new(Cursor::new(png.clone()));
    let reader = decoder.read_info().expect("the PNG decodes");
    assert!(reader.info().width >= 600 && reader.info().height >= 300);
    assert!(png.len() <= 2 * 1024 * 1024);
    let md5: String = Md5::digest(png)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(md5.len(), 32);

    // The spreadsheet: one row per loss of the week, none outside it.
    let file = received[2].file.as_ref().expect("a file message");
    assert!(file.filename.ends_with(".xlsx"), "{}", file.filename);
    let rows = sheet_rows(&file.bytes, "流失明细");
    assert_eq!(rows[0][0], "流失时间", "a header row");
    let mut names: Vec<String> = rows[1..].iter().map(|r| r[1].clone()).collect();
    names.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(names, want);
    assert_eq!(
        rows[1][0], "2026-11-16 00:00:00",
        "times in the zone, oldest first"
    );
    assert_eq!(rows.last().unwrap()[0], "2026-11-22 23:59:59");
    let staff = sheet_rows(&file.bytes, "按员工统计");
    assert_eq!(staff[1][0], "AMY");
    assert_eq!(staff[1][3], "3", "amy lost three that week");

    // The same period again: nothing is sent twice.
    let again = report_week(&env).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("already sent"),
        "{}",
        stdout(&again)
    );
    assert_eq!(env.robot.received().len(), 3);
}

#[tokio::test]
async fn dry_run_writes_the_files_and_sends_nothing() {
    let env = Env::new().await;
    week_of_losses(&env);
    report_config(&env, &["k1"], "", "");
    let out_dir = env.dir.path().join("out");
    let out = env
        .cmd(&[
            "report",
            "--name",
            "weekly",
            "--period",
            WEEK,
            "--dry-run",
            "--out",
            out_dir.to_str().unwrap(),
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.robot.received().is_empty(), "a dry run sends nothing");
    assert!(
        !env.store_path().exists(),
        "a dry run does not create the store"
    );
    let mut written: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    // Files are named by the destination id: a robot by the fingerprint of its key (issue 18).
    let stem = churn_alert::destination::DestinationId::robot("managers", &env.robot.url("k1"))
        .to_string()
        .replace('/', "_");
    let expected: Vec<String> = ["html", "md", "png", "txt", "xlsx"]
        .iter()
        .map(|ext| format!("{stem}.{ext}"))
        .collect();
    assert_eq!(written, expected);
    let md = std::fs::read_to_string(out_dir.join(format!("{stem}.md"))).unwrap();
    assert!(stdout(&out).contains(&md[..md.find('\n').unwrap()]));
}

#[tokio::test]
async fn a_refusing_robot_gets_the_report_later_and_the_other_robot_only_once() {
    let env = Env::new().await;
    week_of_losses(&env);
    report_config(&env, &["k1", "k2"], "", "");
    env.robot.set_removed("k2", true);
    let first = report_week(&env).await;
    assert!(!first.status.success(), "a refusal is a failure");
    assert!(stdout(&first).contains("93000"), "{}", stdout(&first));
    assert!(!stdout(&first).contains("key=k2"), "the key never shows");
    env.robot.set_removed("k2", false);
    let second = report_week(&env).await;
    assert!(second.status.success(), "{}", stderr(&second));
    let received = env.robot.received();
    let to = |key: &str| received.iter().filter(|m| m.key == key).count();
    assert_eq!(to("k1"), 3, "k1 got its report once");
    assert_eq!(to("k2"), 3, "k2 got it when it worked again");
}

// In process under paused time: the report's crontab fires every 2 s of tokio's clock, which
// the daemon's clock follows, so a loaded machine cannot make a fire late.
#[tokio::test(start_paused = true)]
async fn a_report_firing_every_few_seconds_across_a_restart_sends_one_per_period() {
    let env = Env::new().await;
    // A zone where it is about noon now. In a fixed zone, the test would fail from midnight
    // until the overlap after it (yesterday's report waits for late records then), or see two
    // periods when it ran across midnight.
    let utc_hour = now().rem_euclid(86_400) / 3_600;
    let offset = 12 - utc_hour;
    let zone = match offset {
        0 => "Etc/GMT".to_owned(),
        east if east > 0 => format!("Etc/GMT-{east}"),
        west => format!("Etc/GMT+{}", -west),
    };
    let local_now = now() + offset * 3_600;
    let local_noon_yesterday = local_now - local_now.rem_euclid(86_400) - 86_400 + 43_200;
    env.weiban.add_losses(&[loss(
        "yesterday",
        "amy",
        local_noon_yesterday - offset * 3_600,
        true,
    )]);
    let route = env.managers_route(&["k1"]);
    let report = "[[report]]\nname = \"daily\"\ncron = \"*/2 * * * * *\"\nperiod = \"day\"\nroute = \"managers\"\n";
    env.write_config(&format!("{route}\n{report}"), FAST);
    // Polls hourly: only the report's own crontab wakes the daemon.
    let text = std::fs::read_to_string(&env.config).unwrap().replace(
        "cron = \"* * * * * *\"",
        &format!("cron = \"0 0 * * * *\"\ntimezone = \"{zone}\""),
    );
    std::fs::write(&env.config, text).unwrap();

    let reports = |robot: &churn_alert_sim::RobotSim| {
        robot
            .received()
            .iter()
            .filter(|m| m.content.contains("客户流失日报"))
            .count()
    };
    // Runs the daemon for `seconds` of tokio's clock, then stops it: what it logged.
    let env = &env;
    let run_for = |seconds: u64| async move {
        let (stop, daemon) = env.run_in_process();
        let steps = async {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            stop.trigger();
        };
        let (output, ()) = tokio::join!(daemon, steps);
        output.stderr
    };
    let log = run_for(9).await;
    assert_eq!(
        reports(&env.robot),
        1,
        "the first fire after start sends yesterday's report, the next ones nothing: {log}"
    );
    let log = run_for(7).await;
    assert_eq!(
        reports(&env.robot),
        1,
        "fires and a restart never send a period twice: {log}"
    );
    let images = by_type(&env.robot.received(), "image").len();
    assert_eq!(images, 1);
}

#[tokio::test]
async fn reports_by_email_carry_the_chart_inline_and_the_sheet_attached() {
    let env = Env::new().await;
    week_of_losses(&env);
    let smtp = crate::common::smtp::SmtpServer::start();
    report_config(
        &env,
        &[],
        "email_to = [\"boss@example.com\"]\n",
        &smtp.config(),
    );
    let out = report_week(&env).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    let message = mail_parser::MessageParser::default()
        .parse(&mails[0].raw)
        .expect("parse the email");
    assert!(message
        .subject()
        .unwrap_or_default()
        .contains("客户流失周报"));
    let html = message.body_html(0).expect("an HTML part");
    assert!(html.contains("cid:trend"), "{html}");
    let parts: Vec<(String, Vec<u8>)> = message
        .attachments()
        .map(|a| {
            (
                a.content_type()
                    .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()))
                    .unwrap_or_default(),
                a.contents().to_vec(),
            )
        })
        .collect();
    let png = parts
        .iter()
        .find(|(t, _)| t == "image/png")
        .expect("the chart");
    assert!(png.1.starts_with(b"\x89PNG"));
    let sheet = parts
        .iter()
        .find(|(t, _)| t.contains("spreadsheetml"))
        .expect("the spreadsheet");
    assert_eq!(sheet_rows(&sheet.1, "流失明细").len(), 6);
}

#[tokio::test]
async fn a_storm_sends_its_full_list_as_a_spreadsheet() {
    let env = Env::new().await;
    env.weiban
        .add_losses(&SimLoss::generate("风暴", 12, 1, now() - 30, 5));
    let route = env.managers_route(&["k1"]) + "storm_threshold = 5\nstorm_list = 2\n";
    env.write_config(&route, FAST);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let received = env.robot.received();
    let files = by_type(&received, "file");
    assert_eq!(files.len(), 1, "one full list");
    let rows = sheet_rows(&files[0].file.as_ref().unwrap().bytes, "流失明细");
    assert_eq!(rows.len(), 13, "all twelve, not only the two listed");
    let text = all_text(&env.robot);
    assert!(text.contains("另有"), "{text}");
    assert!(text.contains("完整名单见附件"), "{text}");
}

#[tokio::test]
async fn a_staff_member_deleting_many_customers_triggers_one_alert_a_day() {
    let env = Env::new().await;
    let t = now() - 60;
    let deletes: Vec<SimLoss> = (0..4)
        .map(|i| loss(&format!("deleted{i}"), "leaver", t - i, false))
        .collect();
    env.weiban.add_losses(&deletes);
    env.weiban
        .add_losses(&[loss("left-by-customer", "stayer", t, true)]);
    let route = env.managers_route(&["k1"]) + "staff_delete_alert = 3\n";
    env.write_config(&route, FAST);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let alerts = |robot: &churn_alert_sim::RobotSim| {
        robot
            .received()
            .iter()
            .filter(|m| m.content.contains("员工异常删除客户提醒"))
            .map(|m| m.content.clone())
            .collect::<Vec<_>>()
    };
    let first = alerts(&env.robot);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].contains("LEAVER"), "{}", first[0]);
    assert!(first[0].contains(">4<"), "{}", first[0]);
    assert!(!first[0].contains("STAYER"));

    env.weiban
        .add_losses(&[loss("deleted-later", "leaver", now() - 5, false)]);
    let again = env.once().await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(alerts(&env.robot).len(), 1, "once per staff member per day");
}

#[tokio::test]
async fn losses_fetched_twice_by_a_whole_window_fetch_are_counted_once() {
    let env = Env::new().await;
    // 150 losses in one second: the second straddles a page boundary and is fetched again.
    let second = shanghai_midnight("2026-11-18") + 36_000;
    env.weiban
        .add_losses(&SimLoss::generate("同秒", 150, 3, second, 0));
    report_config(&env, &["k1"], "", "");
    let out = report_week(&env).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let received = env.robot.received();
    assert!(
        received[0]
            .content
            .contains("共流失 <font color=\"warning\">150</font> 位客户"),
        "{}",
        received[0].content
    );
    let file = received.iter().find_map(|m| m.file.as_ref()).unwrap();
    assert_eq!(sheet_rows(&file.bytes, "流失明细").len(), 151);
}

#[tokio::test]
async fn a_period_not_over_yet_is_only_shown_never_recorded_as_sent() {
    let env = Env::new().await;
    report_config(&env, &["k1"], "", "");
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let period = format!("{}..{}", today - chrono::Days::new(2), today);
    let out = env
        .cmd(&["report", "--name", "weekly", "--period", &period])
        .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not over yet"), "{}", stderr(&out));
    assert!(env.robot.received().is_empty());
    let dry = env
        .cmd(&[
            "report",
            "--name",
            "weekly",
            "--period",
            &period,
            "--dry-run",
        ])
        .await;
    assert!(dry.status.success(), "{}", stderr(&dry));
}

#[tokio::test]
async fn the_deletion_alert_respects_the_routes_staff_scope() {
    let env = Env::new().await;
    let t = now() - 60;
    let deletes: Vec<SimLoss> = (0..4)
        .map(|i| loss(&format!("deleted{i}"), "leaver", t - i, false))
        .collect();
    env.weiban.add_losses(&deletes);
    let route =
        env.managers_route(&["k1"]) + "staff_delete_alert = 3\nexclude_staff = [\"leaver\"]\n";
    env.write_config(&route, FAST);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !all_text(&env.robot).contains("员工异常删除客户提醒"),
        "a route that excludes the staff member hears nothing about them"
    );
}

#[tokio::test]
async fn preview_and_check_show_a_report_without_sending_it() {
    let env = Env::new().await;
    report_config(&env, &["k1"], "", "");
    let preview = env.cmd(&["preview", "--report", "weekly"]).await;
    assert!(preview.status.success(), "{}", stderr(&preview));
    let shown = stdout(&preview);
    assert!(shown.contains("客户流失周报"), "{shown}");
    assert!(shown.contains("image · trend chart, PNG"), "{shown}");
    assert!(shown.contains("file · 客户流失周报_"), "{shown}");
    let check = env.cmd(&["check"]).await;
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(
        stderr(&check).contains("report `weekly` (0 9 * * 1) → route `managers`"),
        "{}",
        stderr(&check)
    );
    assert!(env.robot.received().is_empty());
    assert!(!env.store_path().exists(), "neither opens the store");
}

/// Issue 19: a report goes through the outbox like every alert. Refused, it waits visibly in
/// `state pending` and on `/healthz`, and `state retry` sends it on the next run.
#[tokio::test(start_paused = true)]
async fn a_refused_report_waits_in_the_outbox_visibly_and_state_retry_sends_it() {
    use std::process::ExitCode;

    let env = Env::new().await;
    week_of_losses(&env);
    let port = free_port();
    report_config(
        &env,
        &["k1"],
        "",
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    env.robot.set_removed("k1", true);
    let refused = env
        .in_process(&["report", "--name", "weekly", "--period", WEEK])
        .await;
    assert_eq!(refused.code, ExitCode::FAILURE, "{}", refused.stdout);
    assert!(refused.stdout.contains("93000"), "{}", refused.stdout);

    let pending = env.in_process(&["state", "pending"]).await.stdout;
    assert!(
        pending.contains(&format!("report `weekly` {WEEK} (summary-1)"))
            && pending.contains("(chart)")
            && pending.contains("failed"),
        "{pending}"
    );
    let dry = env.in_process(&["once", "--dry-run"]).await;
    assert!(
        dry.stdout
            .contains(&format!("also waiting: report `weekly` {WEEK} (summary-1)")),
        "a dry run names the report that waits: {}",
        dry.stdout
    );

    let (stop, daemon) = env.run_in_process();
    let http = http_client();
    let probe = async {
        let mut last = String::new();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let answer = http
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await;
            if let Ok(answer) = answer {
                last = answer.text().await.unwrap_or_default();
                if last.starts_with("degraded") {
                    break;
                }
            }
        }
        stop.trigger();
        last
    };
    let (ran, health) = tokio::join!(daemon, probe);
    assert_eq!(ran.code, ExitCode::SUCCESS, "{}", ran.stderr);
    assert!(
        health.starts_with("degraded") && health.contains("did not accept"),
        "{health}"
    );
    assert!(env.robot.received().is_empty());

    env.robot.set_removed("k1", false);
    let retried = env.in_process(&["state", "retry"]).await;
    assert_eq!(retried.code, ExitCode::SUCCESS, "{}", retried.stderr);
    let once = env.once_in_process().await;
    assert_eq!(once.code, ExitCode::SUCCESS, "{}", once.stderr);
    let received = env.robot.received();
    assert_eq!(received.len(), 3, "summary, chart and list, once each");
    assert!(env
        .in_process(&["state", "pending"])
        .await
        .stdout
        .contains("nothing is pending"));
}

/// A report part the robot refuses for good (40058) waits, marked refused, without holding
/// back the robot's alerts on losses or the report's other parts; `state retry` sends it.
#[tokio::test(start_paused = true)]
async fn a_refused_report_part_never_blocks_the_robots_alerts() {
    use std::process::ExitCode;

    let env = Env::new().await;
    week_of_losses(&env);
    report_config(&env, &["k1"], "", "");
    // The summary is taken, the chart refused for good.
    env.robot.script(&[Some(0), Some(40058)]);
    let first = env
        .in_process(&["report", "--name", "weekly", "--period", WEEK])
        .await;
    assert_eq!(first.code, ExitCode::FAILURE, "{}", first.stdout);
    let pending = env.in_process(&["state", "pending"]).await.stdout;
    assert!(pending.contains("(chart), refused"), "{pending}");

    env.weiban
        .add_losses(&SimLoss::generate("新", 1, 1, now() - 30, 1));
    let once = env.once_in_process().await;
    let received = env.robot.received();
    assert!(
        received.iter().any(|m| m.content.contains("新客户")),
        "the alert went out past the refused part: {}",
        once.stderr
    );
    assert!(
        received.iter().any(|m| m.msgtype == "file"),
        "the report's list went out too"
    );
    assert!(!received.iter().any(|m| m.msgtype == "image"));

    let retried = env.in_process(&["state", "retry"]).await;
    assert_eq!(retried.code, ExitCode::SUCCESS, "{}", retried.stderr);
    let again = env.once_in_process().await;
    assert_eq!(again.code, ExitCode::SUCCESS, "{}", again.stderr);
    let received = env.robot.received();
    assert_eq!(
        received.iter().filter(|m| m.msgtype == "image").count(),
        1,
        "the chart, once"
    );
    assert_eq!(received.iter().filter(|m| m.msgtype == "file").count(), 1);
}

/// A report waiting for a robot whose key is then fixed in the config goes to the fixed robot
/// (a new destination), never stranded and never to a sibling that had its own copy.
#[tokio::test(start_paused = true)]
async fn a_waiting_report_follows_a_fixed_robot_key() {
    use std::process::ExitCode;

    let env = Env::new().await;
    week_of_losses(&env);
    report_config(&env, &["k2", "typo"], "", "");
    env.robot.set_removed("typo", true);
    let first = env
        .in_process(&["report", "--name", "weekly", "--period", WEEK])
        .await;
    assert_eq!(first.code, ExitCode::FAILURE, "{}", first.stdout);
    let to = |key: &str| env.robot.received().iter().filter(|m| m.key == key).count();
    assert_eq!(to("k2"), 3);

    report_config(&env, &["k2", "k1"], "", "");
    let once = env.once_in_process().await;
    assert_eq!(once.code, ExitCode::SUCCESS, "{}", once.stderr);
    assert_eq!(to("k1"), 3, "the fixed robot gets the report");
    assert_eq!(to("k2"), 3, "the sibling had its own copy: not again");
    let pending = env.in_process(&["state", "pending"]).await.stdout;
    assert!(pending.contains("nothing is pending"), "{pending}");
}

/// `churn-alert report` while the daemon runs (the daemon holds the store): the daemon sends
/// it from its own loop, asked over the socket beside the store; asked again, it is not sent
/// twice; a wrong name comes back with the daemon's reason. Both run in this process, under
/// paused time.
#[tokio::test(start_paused = true)]
async fn report_while_the_daemon_runs_is_sent_by_the_daemon() {
    use std::process::ExitCode;

    let env = Env::new().await;
    week_of_losses(&env);
    report_config(&env, &["k1"], "", "");
    let socket = std::path::PathBuf::from(format!("{}.sock", env.store_path().display()));
    let this_week = || {
        env.robot
            .received()
            .iter()
            .filter(|m| m.msgtype == "markdown" && m.content.contains("客户流失周报"))
            .filter(|m| m.content.contains("2026-11-16"))
            .count()
    };
    let ask = || env.in_process(&["report", "--name", "weekly", "--period", WEEK]);
    let (stop, daemon) = env.run_in_process();
    let asks = async {
        for _ in 0..200 {
            if socket.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(socket.exists(), "the daemon made no socket");
        let first = ask().await;
        let arrived = (this_week(), by_type(&env.robot.received(), "image").len());
        let again = ask().await;
        let wrong = env
            .in_process(&["report", "--name", "nope", "--period", WEEK])
            .await;
        stop.trigger();
        (first, arrived, again, wrong)
    };
    let (ran, (first, arrived, again, wrong)) = tokio::join!(daemon, asks);
    assert_eq!(ran.code, ExitCode::SUCCESS, "{}", ran.stderr);

    assert_eq!(first.code, ExitCode::SUCCESS, "{}", first.stderr);
    assert!(
        first.stdout.contains("(sent by the running daemon)"),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains("sent ("), "{}", first.stdout);
    assert_eq!(arrived.0, 1, "the report arrived once");
    assert!(arrived.1 >= 1, "with its chart");

    assert_eq!(again.code, ExitCode::SUCCESS, "{}", again.stderr);
    assert!(
        again.stdout.contains("already sent for this period"),
        "{}",
        again.stdout
    );
    assert_eq!(this_week(), 1, "not sent twice");

    assert_ne!(wrong.code, ExitCode::SUCCESS);
    assert!(
        wrong.stderr.contains("no report named `nope`"),
        "{}",
        wrong.stderr
    );
}
