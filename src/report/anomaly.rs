//! The anomaly alert: a staff member who deletes many customers within one day (a person
//! about to leave often does) triggers one immediate alert to the routes that ask for it with
//! `staff_delete_alert = N`.
//!
//! Each newly seen loss that the staff member ended (`staff`, or `both`) is counted per
//! staff member and calendar day in the store before it is recorded as seen (a poll stage,
//! `pipeline::stages::count_deletions`);
//! after each poll, every count that reached a route's threshold today or yesterday is sent
//! to the route's managers' destinations through the ledger, once per staff member, day and
//! destination ([`alert`]). A refused alert is tried again next cycle.

use chrono::Days;
use serde::Serialize;

use super::send::{ledgered, Delivered};
use crate::config::WecomMsgType;
use crate::destination::DestinationKind;
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;
use crate::sink::{EmailMessage, WecomBody, WecomMessage};
use crate::store::ledger::{DeleteCount, LedgerKey};
use crate::store::StoreError;
use crate::transform::route::Target;
use crate::transform::Router;

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

/// Sends the alerts due: counts at or over a route's threshold, today or yesterday.
pub(crate) async fn alert(
    pipeline: &Pipeline,
    now: i64,
    shutdown: &Shutdown,
) -> Result<usize, StoreError> {
    let config = pipeline.config();
    if config.routes.iter().all(|r| r.staff_delete_alert == 0) {
        return Ok(0);
    }
    let store = pipeline.store();
    let today = super::period::date_of(now, config.timezone());
    let yesterday = today - Days::new(1);
    store.prune_deletes(&yesterday.to_string())?;
    let directory = pipeline.org().current();
    let router = Router::with_directory(config, directory.as_deref());
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
    let mut sent = 0;
    for (day, staff_id, count, route) in &due {
        let context = context(staff_id, count, day, route.staff_delete_alert);
        let report = format!("alert:{}:{}", route.name, staff_id.escape_default());
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
        for destination in managers {
            let key = LedgerKey {
                report: report.clone(),
                period: day.clone(),
                destination: destination.id.clone(),
            };
            let progress = store.progress(&key)?.unwrap_or_default();
            if progress.done {
                continue;
            }
            let delivered = send(
                pipeline,
                &destination.target,
                &context,
                &key,
                progress,
                shutdown,
            )
            .await?;
            match delivered {
                Some(Delivered::Sent { .. }) => {
                    tracing::info!(staff = %staff_id, day = %day, destination = %key.destination, "staff deletion alert sent");
                    sent += 1;
                }
                Some(Delivered::Failed(reason)) => tracing::warn!(
                    staff = %staff_id, destination = %key.destination,
                    "staff deletion alert not delivered: {}; tried again next cycle",
                    crate::logging::redact(&reason)
                ),
                _ => {}
            }
        }
    }
    Ok(sent)
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

async fn send(
    pipeline: &Pipeline,
    target: &Target,
    context: &AlertContext<'_>,
    key: &LedgerKey,
    progress: crate::store::ledger::Progress,
    shutdown: &Shutdown,
) -> Result<Option<Delivered>, StoreError> {
    let renderer = pipeline.renderer();
    let sinks = pipeline.sinks();
    let rendered = |name: &str| {
        renderer.render(name, context).map_err(|e| {
            tracing::error!("staff deletion alert cannot be rendered: {e}");
        })
    };
    let delivered = match target {
        Target::Wecom { robot, msgtype, .. } => {
            let name = match msgtype {
                WecomMsgType::Markdown => "alert.md.hbs",
                WecomMsgType::Text => "alert.txt.hbs",
            };
            let Ok(content) = rendered(name) else {
                return Ok(None);
            };
            let message = WecomMessage {
                robot: robot.clone(),
                body: WecomBody::written(*msgtype, content, Vec::new()),
            };
            ledgered(
                pipeline.store(),
                key,
                progress,
                &sinks.wecom,
                &[("alert".to_owned(), message)],
                shutdown,
            )
            .await?
        }
        Target::Email { to: Some(to), .. } => {
            let Some(email) = &sinks.email else {
                return Ok(None);
            };
            let (Ok(text), Ok(html)) = (rendered("alert.txt.hbs"), rendered("alert.html.hbs"))
            else {
                return Ok(None);
            };
            let message = EmailMessage {
                to: to.clone(),
                subject: format!(
                    "【异常提醒】{} 在 {} 已删除 {} 位客户",
                    context.staff, context.day, context.count
                ),
                text,
                html,
                files: Vec::new(),
            };
            let messages = [("alert".to_owned(), message)];
            ledgered(pipeline.store(), key, progress, email, &messages, shutdown).await?
        }
        Target::Email { to: None, .. } => return Ok(None),
    };
    Ok(Some(delivered))
}
