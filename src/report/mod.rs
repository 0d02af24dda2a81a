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

pub use period::{Period, PeriodKind};

use crate::schedule::Schedule;

/// A `[[report]]`, parsed.
#[derive(Debug)]
pub struct ReportSpec {
    pub name: String,
    /// The crontab as written, for logs.
    pub cron: String,
    pub schedule: Schedule,
    pub period: PeriodKind,
    pub route: String,
    /// Staff members (and departments) listed by name; the rest are summed.
    pub top: usize,
}

impl ReportSpec {
    /// 客户流失周报 and the like.
    pub fn title(&self) -> String {
        format!("客户流失{}报", self.period.word())
    }
}
