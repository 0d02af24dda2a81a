//! When reports run inside `run` and `once`: when a report's crontab fired since it was last
//! looked at, and again after a poll while a destination of the current period is not done.
//!
//! The store keeps, per report, the time its schedule was last handled; a fire is handled
//! only when the report for the last whole period was planned (Weiban answered), so a failed
//! fetch is tried again after the next poll. A report seen for the first time starts from
//! now: installing the daemon does not send last week's report at once (`churn-alert report`
//! does that on demand). Whether a fire sends anything is up to the ledger: a crontab that
//! fires more often than the period sends each period once.

use chrono::DateTime;

use super::period::Period;
use super::send::{self, deliver, fetch, plan, ReportError};
use super::ReportSpec;
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;
use crate::transform::Router;

/// How long a destination that refused a report is left before the next try.
const RETRY_AFTER: i64 = 15 * 60;

/// The next time any report's schedule fires after `now`.
pub(crate) fn next_fire(pipeline: &Pipeline, now: i64) -> Option<i64> {
    let now = DateTime::from_timestamp(now, 0)?;
    pipeline
        .config()
        .reports
        .iter()
        .filter_map(|spec| spec.schedule.next_after(now))
        .map(|t| t.timestamp())
        .min()
}

/// Runs the reports that are due at `now`; logs what fails.
pub(crate) async fn run_due(pipeline: &Pipeline, now: i64, shutdown: &Shutdown) {
    for spec in &pipeline.config().reports {
        if shutdown.is_shutdown() {
            return;
        }
        if let Err(e) = run_if_due(pipeline, spec, now, shutdown).await {
            tracing::error!(
                "{}; tried again after the next poll",
                crate::logging::redact(&e.to_string())
            );
        }
    }
}

async fn run_if_due(
    pipeline: &Pipeline,
    spec: &ReportSpec,
    now: i64,
    shutdown: &Shutdown,
) -> Result<(), ReportError> {
    let store = pipeline.store();
    let Some(checked) = store.report_checked(&spec.name)? else {
        store.set_report_checked(&spec.name, now).await?;
        return Ok(());
    };
    let fired = DateTime::from_timestamp(checked, 0)
        .and_then(|t| spec.schedule.next_after(t))
        .is_some_and(|t| t.timestamp() <= now);
    let tz = pipeline.config().timezone();
    let period = Period::last_whole(spec.period, send::today(tz, now));
    let retry = store.unfinished()?.iter().any(|(key, progress)| {
        key.report == spec.name && key.period == period.key() && progress.at + RETRY_AFTER <= now
    });
    if !fired && !retry {
        return Ok(());
    }
    tracing::info!(report = %spec.name, period = %period.key(), "running report");
    let losses = fetch(pipeline, spec, &period, now).await?;
    let directory = pipeline.org().current();
    let router = Router::with_directory(pipeline.config(), directory.as_deref());
    let planned = plan(
        pipeline.config(),
        &router,
        pipeline.renderer(),
        spec,
        period,
        &losses,
    )?;
    if fired {
        store.set_report_checked(&spec.name, now).await?;
    }
    deliver(store, pipeline.sinks(), spec, &period, &planned, shutdown).await?;
    Ok(())
}
