//! The anomaly alert: a staff member who deletes many customers within one day (a person
//! about to leave often does) triggers one immediate alert to the routes that ask for it with
//! `staff_delete_alert = N`.
//!
//! Each newly seen loss that the staff member ended (`staff`, or `both`) is counted per
//! staff member and calendar day in the store before it is recorded as seen (a poll stage,
//! `pipeline::stages::count_deletions`);
//! after each poll, every count that reached a route's threshold today or yesterday is queued
//! for the route's managers' destinations, produced once per staff member and day
//! ([`alert`]); the delivery stages send it, and a refused alert waits in the outbox, visible
//! in `state pending`, like any other delivery.

use chrono::Days;
use serde::Serialize;

use crate::config::WecomMsgType;
use crate::destination::DestinationKind;
use crate::pipeline::Pipeline;
use crate::sink::WecomBody;
use crate::store::ledger::DeleteCount;
use crate::store::{Prepared, PreparedBody, Produced, StoreError};
use crate::transform::route::Target;

/// What an alert template receives.
#[derive(Debug, Serialize)]
struct AlertContext<'a> {
    staff: &'a str,
    staff_id: &'a str,
    departments: String,
    day: &'a str,
    count: usize,
    threshold: usize,
    customers: String,
    /// How many customers `customers` names.
    shown: usize,
}

/// Queues the alerts due: counts at or over a route's threshold, today or yesterday, each
/// produced once for all the route's managers' destinations; returns how many were queued.
/// An alert whose template fails is not produced: the error is logged at every cycle until
/// the template is fixed, and the alert goes out then.
pub(crate) async fn alert(pipeline: &Pipeline, now: i64) -> Result<usize, StoreError> {
    let config = pipeline.config();
    if config.routes.iter().all(|r| r.staff_delete_alert == 0) {
        return Ok(0);
    }
    let store = pipeline.store();
    let today = super::period::date_of(now, config.timezone());
    let yesterday = today - Days::new(1);
    store.prune_deletes(&yesterday.to_string())?;
    let routing = pipeline.routing();
    let router = routing.router();
    // (day, staff id, count, route) of every count at or over a route's threshold.
    let mut due = Vec::new();
    for day in [yesterday.to_string(), today.to_string()] {
        for (staff_id, count) in store.deletes_on(&day)? {
            for route in &config.routes {
                let over = route.staff_delete_alert > 0 && count.count >= route.staff_delete_alert;
                if over && router.covers_staff(route, &staff_id) {
                    due.push((day.clone(), staff_id.clone(), count.clone(), route));
                }
            }
        }
    }
    let mut queued = 0;
    for (day, staff_id, count, route) in &due {
        let produced = Produced {
            // The route's `:` escaped, so that the first bare `:` ends it (names without one
            // keep the key earlier releases wrote).
            producer: format!(
                "alert:{}:{}",
                route.name.replace('\\', "\\\\").replace(':', "\\:"),
                staff_id.escape_default()
            ),
            period: day.clone(),
        };
        if store.report_produced(&produced.producer, &produced.period)? {
            continue;
        }
        let context = context(staff_id, count, day, route.staff_delete_alert);
        let what = format!(
            "staff deletion alert: {} ({staff_id}), {day}",
            count.staff_name
        );
        let managers = router
            .route_destinations(route, staff_id)
            .into_iter()
            .filter(|id| {
                !matches!(
                    id.kind,
                    DestinationKind::StaffWecom | DestinationKind::StaffEmail
                )
            })
            .filter_map(|id| router.get(&id));
        let mut messages = Vec::new();
        for destination in managers {
            match prepare(pipeline, &destination.target, &context) {
                Ok(Some(body)) => messages.push((
                    destination.id.clone(),
                    vec![Prepared {
                        what: what.clone(),
                        label: "alert".into(),
                        queued_at: now,
                        body,
                        queued_for: Vec::new(),
                        refused: None,
                    }],
                )),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(staff = %staff_id, day = %day, "staff deletion alert cannot be rendered: {e}; it is produced once the template renders");
                    messages.clear();
                    break;
                }
            }
        }
        if !messages.is_empty() && store.queue_produced(&produced, &messages, now).await? {
            tracing::info!(staff = %staff_id, day = %day, destinations = messages.len(), "staff deletion alert queued");
            queued += 1;
        }
    }
    Ok(queued)
}

/// Renders every alert template with a sample, so that `check` finds a broken one before a
/// staff member's deletions do.
pub(crate) fn check_templates(
    renderer: &crate::render::Renderer,
) -> Result<(), crate::render::RenderError> {
    let count = DeleteCount {
        count: 12,
        staff_name: "王芳".into(),
        departments: vec!["销售一部 / 华东组".into()],
        customers: vec!["客户甲".into(), "客户乙".into()],
    };
    let context = context("wangfang", &count, "2026-11-25", 10);
    for name in ["alert.md.hbs", "alert.txt.hbs", "alert.html.hbs"] {
        renderer.render(name, &context)?;
    }
    Ok(())
}

fn context<'a>(
    staff_id: &'a str,
    count: &'a DeleteCount,
    day: &'a str,
    threshold: usize,
) -> AlertContext<'a> {
    AlertContext {
        staff: &count.staff_name,
        staff_id,
        departments: count.departments.join("、"),
        day,
        count: count.count,
        threshold,
        customers: count.customers.join("、"),
        shown: count.customers.len(),
    }
}

/// The alert for `target`; `None` where it cannot go (an email route without `[smtp]` or
/// without an address, said by `check`).
fn prepare(
    pipeline: &Pipeline,
    target: &Target,
    context: &AlertContext<'_>,
) -> Result<Option<PreparedBody>, crate::render::RenderError> {
    let renderer = pipeline.renderer();
    match target {
        Target::Wecom { msgtype, .. } => {
            let name = match msgtype {
                WecomMsgType::Markdown => "alert.md.hbs",
                WecomMsgType::Text => "alert.txt.hbs",
            };
            let content = renderer.render(name, context)?;
            let body = WecomBody::written(*msgtype, content, Vec::new());
            Ok(Some(crate::deliver::prepared::wecom_body(body)))
        }
        Target::Email { to: Some(_), .. } if pipeline.sinks().email.is_some() => {
            Ok(Some(PreparedBody::Email {
                subject: format!(
                    "【异常提醒】{} 在 {} 已删除 {} 位客户",
                    context.staff, context.day, context.count
                ),
                text: renderer.render("alert.txt.hbs", context)?,
                html: renderer.render("alert.html.hbs", context)?,
                files: Vec::new(),
            }))
        }
        Target::Email { .. } => Ok(None),
    }
}
