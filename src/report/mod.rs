//! Reports: a scheduled summary of a whole period for a route's robots and mailboxes.
//!
//! Weiban is the source of truth: a report fetches the period's losses (with the period
//! before it and the trend's span) from the outflow list under the same limits as polling,
//! so it covers periods from before the daemon was installed and needs nothing from the
//! outbox. [`stats`] counts, [`chart`] draws the trend, [`xlsx`] writes the full list,
//! [`compose`] turns them into messages per destination, and [`send`] delivers them exactly
//! once per period and destination through the store's ledger ([`crate::store::ledger`]).
//! [`anomaly`] is the immediate alert for a staff member who deletes many customers in a day.

pub(crate) mod anomaly;
pub(crate) mod chart;
pub(crate) mod compose;
pub(crate) mod due;
pub(crate) mod period;
pub(crate) mod send;
pub(crate) mod stats;
pub(crate) mod xlsx;

pub use crate::config::ReportSpec;
pub use period::Period;

use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;

/// What follows a poll: the staff-deletion alerts the counts call for, then the reports that
/// are due. Failures are logged and tried again after the next poll.
pub(crate) async fn after_poll(pipeline: &Pipeline, now: i64, shutdown: &Shutdown) {
    if !shutdown.is_shutdown() {
        if let Err(e) = anomaly::alert(pipeline, now, shutdown).await {
            tracing::error!(
                "staff deletion alerts: {}; tried again after the next poll",
                crate::logging::redact(&e.to_string())
            );
        }
    }
    due::run_due(pipeline, now, shutdown).await;
}

