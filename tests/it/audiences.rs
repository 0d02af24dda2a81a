//! Issue 4's acceptance: both audiences, both channels, splitting, pacing, escaping, storms.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::smtp::SmtpServer;
use crate::common::*;
use churn_alert_sim::SimLoss;
use mail_parser::MessageParser;

fn mentions(content: &str) -> Vec<String> {
    content
        .match_indices("<@")
        .filter_map(|(i, _)| {
            content[i + 2..]
                .split_once('>')
                .map(|(id, _)| id.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_messages_mention_their_own_staff_member_only() {
    let env = Env::new().await;
    let routes = format!(
        r#"
[[route]]
name = "sales"
audience = "staff"
mention = true
wecom_webhooks = ["{group}"]
staff_webhooks = {{ staff00 = "{own}" }}

[[route]]
name = "sales-text"
audience = "staff"
mention = true
wecom_msgtype = "text"
wecom_webhooks = ["{text}"]
"#,
        group = env.robot.url("group"),
        own = env.robot.url("own00"),
        text = env.robot.url("text"),
    );
    env.write_config(&routes, FAST);
    let losses = SimLoss::generate("庚", 12, 3, now() - 30, 3);
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));

    let received = env.robot.received();
    let staff_of = |name: &str| {
        losses
            .iter()
            .find(|l| name.contains(&l.customer_name))
            .map(|l| l.staff_id.clone())
    };
    let markdown: Vec<_> = received.iter().filter(|m| m.key == "group").collect();
    assert_eq!(
        markdown.len(),
        2,
        "staff01 and staff02 in the group; staff00 has its own robot"
    );
    for m in &markdown {
        let mentioned = mentions(&m.content);
        assert_eq!(mentioned.len(), 1, "{}", m.content);
        let owners: BTreeSet<String> = losses
            .iter()
            .filter(|l| m.content.contains(&l.customer_name))
            .map(|l| l.staff_id.clone())
            .collect();
        assert_eq!(
            owners,
            BTreeSet::from([mentioned[0].clone()]),
            "{}",
            m.content
        );
    }
    let own: Vec<_> = received.iter().filter(|m| m.key == "own00").collect();
    assert_eq!(own.len(), 1);
    assert_eq!(mentions(&own[0].content), ["staff00"]);
    let text: Vec<_> = received.iter().filter(|m| m.key == "text").collect();
    assert_eq!(text.len(), 3);
    for m in text {
        assert_eq!(m.msgtype, "text");
        assert!(m.content.len() <= 2048);
        let first_customer = losses
            .iter()
            .find(|l| m.content.contains(&l.customer_name))
            .unwrap();
        assert_eq!(m.mentioned, std::slice::from_ref(&first_customer.staff_id));
        assert_eq!(staff_of(&m.content), Some(first_customer.staff_id.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_is_split_in_full_or_summarized_and_mailed_in_full() {
    let env = Env::new().await;
    let smtp = SmtpServer::start();
    let routes = format!(
        r#"
[[route]]
name = "everything"
audience = "managers"
storm_threshold = 0
wecom_webhooks = ["{all}"]

[[route]]
name = "summary"
audience = "managers"
wecom_webhooks = ["{sum}"]
email_to = ["boss@example.com"]
"#,
        all = env.robot.url("all"),
        sum = env.robot.url("sum"),
    );
    env.write_config(&routes, &format!("{FAST}\n{}", smtp.config()));
    let losses = SimLoss::generate("辛", 300, 1, now() - 30, 1);
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));

    let received = env.robot.received();
    let all: Vec<_> = received.iter().filter(|m| m.key == "all").collect();
    assert!(all.len() > 1);
    let parts = all.len();
    for (i, m) in all.iter().enumerate() {
        assert!(
            m.content.len() <= 4096,
            "part {i} has {} bytes",
            m.content.len()
        );
        assert!(
            m.content.contains(&format!("({}/{parts})", i + 1)),
            "{}",
            m.content
        );
    }
    let text: String = all.iter().map(|m| m.content.as_str()).collect();
    for loss in &losses {
        assert_eq!(
            text.matches(&loss.customer_name).count(),
            1,
            "{}",
            loss.customer_name
        );
    }

    let summary: Vec<_> = received
        .iter()
        .filter(|m| m.key == "sum" && m.msgtype == "markdown")
        .collect();
    assert_eq!(summary.len(), 1, "a storm is one message, not a flood");
    let lists: Vec<_> = received
        .iter()
        .filter(|m| m.key == "sum" && m.msgtype == "file")
        .collect();
    assert_eq!(lists.len(), 1, "and its full list goes along as one file");
    assert!(summary[0].content.contains("完整名单见附件"));
    assert!(
        summary[0]
            .content
            .contains("另有 <font color=\"warning\">280</font> 位"),
        "{}",
        summary[0].content
    );
    let listed = losses
        .iter()
        .filter(|l| summary[0].content.contains(&l.customer_name))
        .count();
    assert_eq!(listed, 20);

    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    let mail = MessageParser::default()
        .parse(&mails[0].raw)
        .expect("parse email");
    let body = mail.body_text(0).unwrap_or_default();
    for loss in &losses {
        assert!(
            body.contains(&loss.customer_name),
            "{} missing from the email",
            loss.customer_name
        );
    }
    // Every loss is remembered as reported, listed or not.
    assert!(env.once().await.status.success());
    assert_eq!(env.robot.received().len(), received.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_text_cannot_mention_or_link() {
    let env = Env::new().await;
    let mut losses = SimLoss::generate("壬", 3, 1, now() - 30, 1);
    losses[0].customer_name = "<@all>".into();
    losses[1].customer_name = "[x](http://evil.example)".into();
    losses[2].remark = Some("# 标题 <font color=\"warning\">红</font>\n- 列表".into());
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = all_text(&env.robot);
    assert!(!text.contains("<@"), "a mention got through: {text}");
    assert!(!text.contains("]("), "a link got through: {text}");
    assert!(!text.contains("http://"), "a URL got through: {text}");
    assert!(
        !text.contains("<font color=\"warning\">红"),
        "a font tag got through: {text}"
    );
    assert!(
        !text.contains("\n# 标题") && !text.contains("\n- 列表"),
        "{text}"
    );
    assert!(text.contains("＜@all＞"), "the name is still shown: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_arrives_with_utf8_subject_and_both_parts() {
    let env = Env::new().await;
    let smtp = SmtpServer::start();
    let routes = r#"
[[route]]
name = "boss"
audience = "managers"
email_to = ["boss@example.com"]

[[route]]
name = "staff-mail"
audience = "staff"
email_staff = true
staff_emails = { staff01 = "override01@example.com" }
"#;
    env.write_config(routes, &format!("{FAST}\n{}", smtp.config()));
    let mut losses = SimLoss::generate("癸", 6, 2, now() - 30, 1);
    losses[0].customer_name = "<b>粗体</b>客户".into();
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));

    let mails = smtp.mails();
    assert_eq!(mails.len(), 3, "one digest and one per staff member");
    let parser = MessageParser::default();
    let boss = mails
        .iter()
        .find(|m| m.to == ["boss@example.com"])
        .expect("boss mail");
    let parsed = parser.parse(&boss.raw).expect("parse");
    assert_eq!(parsed.subject(), Some("【客户流失提醒】共 6 位客户流失"));
    let text = parsed.body_text(0).expect("text part");
    let html = parsed.body_html(0).expect("html part");
    for loss in &losses {
        assert!(text.contains(&loss.customer_name), "{text}");
    }
    for loss in &losses[1..] {
        assert!(html.contains(&loss.customer_name), "{html}");
    }
    assert!(
        html.contains("&lt;b&gt;粗体&lt;/b&gt;客户"),
        "customer HTML must be escaped: {html}"
    );
    assert!(!html.contains("<b>粗体"), "{html}");

    let staff00 = mails
        .iter()
        .find(|m| m.to == ["staff00@example.com"])
        .expect("Weiban's address");
    let parsed = parser.parse(&staff00.raw).unwrap();
    assert_eq!(parsed.subject(), Some("【客户流失提醒】您有 3 位客户流失"));
    let body = parsed.body_text(0).unwrap();
    for loss in &losses {
        assert_eq!(
            body.contains(&loss.customer_name),
            loss.staff_id == "staff00",
            "{body}"
        );
    }
    assert!(
        mails.iter().any(|m| m.to == ["override01@example.com"]),
        "the config overrides Weiban"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_renders_without_sending_or_touching_the_store() {
    let env = Env::new().await;
    let out = env.cmd(&["preview"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("子川") && text.contains("route `managers`"),
        "{text}"
    );
    assert!(!text.contains("key=k1"), "robot key leaked: {text}");
    assert!(env.robot.attempts().is_empty());
    assert!(
        !env.store_path().exists(),
        "preview must not create the store"
    );
}

/// 45 staff members with one loss each make 45 messages to one robot: WeCom's 20 a minute
/// must hold in every rolling minute (the simulator answers 45009 beyond it). Takes ~2 min.
// Under paused time: the two minutes of pacing pass in milliseconds, on the daemon's clock and
// the robot's alike (issue 19).
#[tokio::test(start_paused = true)]
async fn a_burst_of_45_messages_never_exceeds_20_a_minute() {
    let env = Env::new().await;
    let routes = format!(
        "[[route]]\nname = \"sales\"\naudience = \"staff\"\nwecom_webhooks = [\"{}\"]\n",
        env.robot.url("busy")
    );
    env.write_config(
        &routes,
        &FAST.replace("messages_per_minute = 0", "messages_per_minute = 20"),
    );
    env.weiban
        .add_losses(&SimLoss::generate("子", 45, 45, now() - 30, 1));
    let out = env.once_in_process().await;
    assert_eq!(out.code, std::process::ExitCode::SUCCESS, "{}", out.stderr);
    let received = env.robot.received();
    assert_eq!(received.len(), 45);
    let attempts = env.robot.attempts();
    assert!(
        attempts.iter().all(|a| a.errcode == Some(0)),
        "the robot had to refuse"
    );
    for (i, m) in received.iter().enumerate() {
        let in_minute = received[i..]
            .iter()
            .filter(|n| n.at - m.at < Duration::from_secs(60))
            .count();
        assert!(
            in_minute <= 20,
            "{in_minute} messages within 60 s of message {i}"
        );
    }
}

/// A robot's digest takes at most 500 losses at a time (memory), an email up to 2 000 (one
/// long list rather than several short ones): 600 losses are two robot digests, one email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_takes_a_larger_batch_than_a_robot_digest() {
    let env = Env::new().await;
    let smtp = SmtpServer::start();
    let routes = format!(
        r#"
[[route]]
name = "boss"
audience = "managers"
storm_threshold = 0
email_to = ["boss@example.com"]
wecom_webhooks = ["{robot}"]
"#,
        robot = env.robot.url("k1"),
    );
    env.write_config(&routes, &format!("{FAST}\n{}", smtp.config()));
    let losses = SimLoss::generate("批", 600, 6, now() - 30, 1);
    env.weiban.add_losses(&losses);
    // Pacing is not under test: the robot takes them as fast as they come.
    env.robot.set_per_minute(None);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));

    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "one email for 600 losses");
    let parsed = MessageParser::default()
        .parse(&mails[0].raw)
        .expect("parse");
    assert_eq!(parsed.subject(), Some("【客户流失提醒】共 600 位客户流失"));
    assert_eq!(
        env.digests_received(),
        2,
        "600 losses in robot digests of at most 500"
    );
}
