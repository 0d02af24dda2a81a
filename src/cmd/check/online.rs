//! `check --online` and `--send-test`: what the offline check cannot know.
//!
//! Fetches a token (wrong credentials fail naming `weiban.corp_id` and `weiban.secret`), makes
//! one outflow request (limit 1) over the first-run window and says what it found; for routes
//! that email staff, pages that window to list staff whose losses carry no address. With
//! `--send-test`, every configured robot and email address gets one short test message, and
//! each answer is printed — naming the route, never the key.

use std::collections::BTreeSet;

use crate::config::{Config, WecomMsgType};
use crate::directory::{DepartmentRef, Directory};
use crate::render::escape::terminal;
use crate::secret::redact_url;
use crate::sink::{EmailMessage, RobotUrl, SendError, Sink, Sinks, WecomBody, WecomMessage};
use crate::source::{WeibanClient, Window};
use crate::time::{rfc3339, unix_now};
use crate::transform::departments;

/// Talks to Weiban once and reports; fails when it cannot.
pub(super) async fn weiban(config: &Config) -> anyhow::Result<()> {
    let client = WeibanClient::new(&config.weiban)?;
    let now = unix_now();
    let lookback = i64::try_from(config.weiban.first_lookback.as_secs()).unwrap_or(86_400);
    let window = Window {
        start: now - lookback,
        end: now,
    };
    let (total, newest) = client.probe(window).await?;
    let total = total.map_or_else(|| "an unknown number of".to_owned(), |n| n.to_string());
    crate::cmd::console::show!(
        "Weiban: access token ok; {total} lost customer(s) since {}",
        rfc3339(config.timezone(), window.start)
    );
    if let Some(loss) = newest {
        crate::cmd::console::show!(
            "  newest: {} (staff {} {}), {}",
            terminal(&loss.customer_name),
            terminal(&loss.staff_name),
            terminal(&loss.staff_id),
            rfc3339(config.timezone(), loss.outflow_at)
        );
    }
    if config.routes.iter().any(|r| r.email_staff) {
        report_staff_without_email(config, &client, window).await?;
    }
    let names_staff = config.routes.iter().any(|r| {
        !r.staff.is_empty() || !r.exclude_staff.is_empty() || !r.staff_webhooks.is_empty()
    });
    if config.uses_departments() || names_staff {
        check_org_chart(config, &client.directory(now).await?)?;
    }
    Ok(())
}

/// Departments and staff named in the config, against Weiban's directory: a department name
/// Weiban does not know, or one that names several departments, fails the check (losses it
/// scopes would be held); staff Weiban does not know, and staff no department robot covers,
/// are reported.
fn check_org_chart(config: &Config, directory: &Directory) -> anyhow::Result<()> {
    crate::cmd::console::show!(
        "Weiban directory: {} staff member(s), {} department(s)",
        directory.staff.len(),
        directory.departments.len()
    );
    let mut unresolved = Vec::new();
    for route in config.routes.iter().chain(&config.fallback) {
        for (key, reference) in department_references(route) {
            if let Err(e) = directory.resolve(&reference) {
                unresolved
                    .push(terminal(&format!("route `{}`, `{key}`: {e}", route.name)).into_owned());
            }
        }
        let staff_named = route
            .staff
            .iter()
            .chain(&route.exclude_staff)
            .chain(route.staff_webhooks.keys())
            .chain(route.staff_emails.keys());
        for id in staff_named.filter(|id| !directory.knows(id)) {
            crate::cmd::console::show!(
                "warning: route `{}` names staff `{}`, whom Weiban's directory does not know (see `churn-alert staff`)",
                route.name,
                terminal(id)
            );
        }
        report_staff_without_team_robot(config, route, directory);
    }
    if !unresolved.is_empty() {
        anyhow::bail!(
            "department names that Weiban does not know, or that name more than one department \
             (losses they scope would be held); fix them, with the names or ids `churn-alert staff` \
             prints:\n  {}",
            unresolved.join("\n  ")
        );
    }
    Ok(())
}

/// Every department a route names, with the key it is named under.
fn department_references(
    route: &crate::config::RouteConfig,
) -> impl Iterator<Item = (&'static str, DepartmentRef)> + '_ {
    let listed = |key: &'static str, refs: &'_ [DepartmentRef]| {
        refs.iter()
            .cloned()
            .map(move |r| (key, r))
            .collect::<Vec<_>>()
    };
    listed("departments", &route.departments)
        .into_iter()
        .chain(listed("exclude_departments", &route.exclude_departments))
        .chain(
            route
                .department_webhooks
                .keys()
                .map(|k| ("department_webhooks", DepartmentRef::from_key(k))),
        )
        .chain(
            route
                .department_emails
                .keys()
                .map(|k| ("department_emails", DepartmentRef::from_key(k))),
        )
}

/// Lists active staff in a route's scope that none of its `department_webhooks` covers.
fn report_staff_without_team_robot(
    config: &Config,
    route: &crate::config::RouteConfig,
    directory: &Directory,
) {
    if route.department_webhooks.is_empty() {
        return;
    }
    let uncovered: Vec<String> = directory
        .staff
        .values()
        .filter(|s| !s.has_left())
        .filter(|s| departments::in_scope(route, Some(directory), &s.id))
        .filter(|s| {
            departments::matching(route.department_webhooks.keys(), Some(directory), &s.id)
                .is_empty()
        })
        .map(|s| format!("{} ({})", terminal(&s.name), terminal(&s.id)))
        .collect();
    if uncovered.is_empty() {
        return;
    }
    let goes_to = if !route.wecom_webhooks.is_empty() {
        "go to its wecom_webhooks"
    } else if config.fallback.is_some() {
        "are held unless another route takes them (`churn-alert state pending` shows them), \
         and after `[directory] hold_for` go to the [fallback] destinations"
    } else {
        "are held unless another route takes them (`churn-alert state pending` shows them) \
         until a department robot covers them, or a [fallback] destination is configured"
    };
    crate::cmd::console::show!(
        "route `{}`: no department robot covers {} staff member(s), whose losses {goes_to}: {}",
        route.name,
        uncovered.len(),
        uncovered.join(", ")
    );
}

/// Lists the staff of `window`'s losses that `email_staff` routes cannot mail.
async fn report_staff_without_email(
    config: &Config,
    client: &WeibanClient,
    window: Window,
) -> anyhow::Result<()> {
    let missing: BTreeSet<(String, String)> = client
        .losses_in(window)
        .await?
        .into_iter()
        .filter(|l| l.staff_email.is_none())
        .map(|l| (l.staff_id, l.staff_name))
        .collect();
    for route in config.routes.iter().filter(|r| r.email_staff) {
        let unmailable: Vec<String> = missing
            .iter()
            .filter(|(id, _)| !route.staff_emails.contains_key(id))
            .map(|(id, name)| format!("{} ({})", terminal(name), terminal(id)))
            .collect();
        if !unmailable.is_empty() {
            crate::cmd::console::show!(
                "route `{}`: Weiban has no email address for {} staff member(s) who lost customers recently: {}; add them to `staff_emails`, or they are only reached through the route's robots",
                route.name,
                unmailable.len(),
                unmailable.join(", ")
            );
        }
    }
    Ok(())
}

/// Sends one test message to every robot and address; returns how many refused.
pub(super) async fn send_tests(config: &Config, sinks: &Sinks) -> usize {
    let mut refused = 0;
    for route in &config.routes {
        let text = |what: &str| {
            format!(
                "churn-alert 测试消息：路由 `{}` 的{what}配置正确，流失提醒会发到这里。",
                route.name
            )
        };
        let robots = route
            .wecom_webhooks
            .iter()
            .enumerate()
            .map(|(i, url)| (format!("robot #{}", i + 1), url))
            .chain(
                route
                    .staff_webhooks
                    .iter()
                    .map(|(staff, url)| (format!("robot of staff {staff}"), url)),
            )
            .chain(
                route
                    .department_webhooks
                    .iter()
                    .map(|(department, url)| (format!("robot of department {department}"), url)),
            );
        for (what, url) in robots {
            let content = match route.wecom_msgtype {
                WecomMsgType::Markdown => format!("**{}**", text("群机器人")),
                WecomMsgType::Text => text("群机器人"),
            };
            let shown = format!(
                "route `{}`, {what} ({})",
                route.name,
                redact_url(url.expose())
            );
            // The offline check has refused a config whose robot URL does not parse.
            let Some(robot) = RobotUrl::parse(url) else {
                crate::cmd::console::show!("{shown}: REFUSED: not a URL");
                refused += 1;
                continue;
            };
            let message = WecomMessage {
                robot,
                body: WecomBody::written(route.wecom_msgtype, content, Vec::new()),
            };
            refused += usize::from(!answered(&shown, sinks.wecom.send(&message).await));
        }
        let Some(email) = &sinks.email else {
            continue;
        };
        for to in route
            .email_to
            .iter()
            .chain(route.department_emails.values())
        {
            let message = EmailMessage {
                to: to.clone(),
                subject: "churn-alert 测试消息".into(),
                text: text("邮件收件人"),
                html: format!("<p>{}</p>", handlebars::html_escape(&text("邮件收件人"))),
                files: Vec::new(),
            };
            let shown = format!("route `{}`, email to {to}", route.name);
            refused += usize::from(!answered(&shown, email.send(&message).await));
        }
        if route.email_staff {
            crate::cmd::console::show!(
                "route `{}`: staff mailboxes are not tested (their addresses come from Weiban)",
                route.name
            );
        }
    }
    refused
}

/// Prints one destination's answer; whether it accepted.
fn answered(shown: &str, answer: Result<(), SendError>) -> bool {
    match answer {
        Ok(()) => {
            crate::cmd::console::show!("{shown}: test message accepted");
            true
        }
        Err(e) => {
            crate::cmd::console::show!(
                "{shown}: REFUSED: {}",
                crate::logging::redact(&e.to_string())
            );
            false
        }
    }
}
