//! Reports: a scheduled summary of a whole period for a route's robots and mailboxes.
//!
//! Weiban is the source of truth: a report fetches the period's losses (with the period
//! before it and the trend's span) from the outflow list under the same limits as polling,
//! so it covers periods from before the daemon was installed and needs nothing from the
//! outbox. [`stats`] counts, [`chart`] draws the trend, [`xlsx`] writes the full list,
//! [`compose`] turns them into messages per destination, and [`send`] queues them in the
//! outbox once per period (the ledger records what was produced); the delivery stages send
//! them like every other message. [`anomaly`] is the immediate alert for a staff member who
//! deletes many customers in a day, produced the same way.

pub(crate) mod anomaly;
pub(crate) mod chart;
pub(crate) mod compose;
pub(crate) mod due;
pub(crate) mod output;
pub(crate) mod period;
pub(crate) mod plan;
pub(crate) mod send;
pub(crate) mod stats;
pub(crate) mod xlsx;

pub use crate::config::ReportSpec;
pub use period::Period;

use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;

/// What follows a poll: the staff-deletion alerts the counts call for, then the reports that
/// are due, queued in the outbox. Returns whether anything was queued (then a delivery pass
/// sends it). Failures are logged and tried again after the next poll.
pub(crate) async fn after_poll(pipeline: &Pipeline, now: i64, shutdown: &Shutdown) -> bool {
    let mut queued = 0;
    if !shutdown.is_shutdown() {
        match anomaly::alert(pipeline, now).await {
            Ok(alerts) => queued += alerts,
            Err(e) => tracing::error!(
                "staff deletion alerts: {}; tried again after the next poll",
                crate::logging::redact(&e.to_string())
            ),
        }
    }
    queued += due::run_due(pipeline, now, shutdown).await;
    queued > 0
}
