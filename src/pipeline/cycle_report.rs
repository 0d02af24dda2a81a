//! The outcome of a cycle: what `once` exits with and the one line every cycle logs.

use std::time::Duration;

use crate::zone::Zone;

use super::PollReport;
use crate::deliver::DeliveryReport;

/// The outcome of a full cycle, for the one log line and the exit code.
#[derive(Debug)]
pub(crate) struct CycleReport {
    pub poll: PollReport,
    /// Why the poll failed, if it did (deliveries still ran).
    pub poll_error: Option<String>,
    pub delivery: DeliveryReport,
    pub pending: usize,
    pub elapsed: Duration,
}

impl CycleReport {
    /// Every due message was accepted and the window was fetched whole.
    pub fn is_clean(&self) -> bool {
        self.poll_error.is_none() && self.delivery.all_delivered()
    }
}

impl CycleReport {
    pub(super) fn log(&self, tz: Zone) {
        let time = |t: i64| crate::time::rfc3339(tz, t);
        let window = self
            .poll
            .window
            .map(|w| format!("{}..{}", time(w.start), time(w.end)))
            .unwrap_or_else(|| "-".into());
        match &self.poll_error {
            None => tracing::info!(
                window = %window,
                fetched = self.poll.fetched,
                new_losses = self.poll.new_losses,
                messages_sent = self.delivery.messages_sent,
                pending = self.pending,
                held = self.delivery.held,
                elapsed_ms = self.elapsed.as_millis() as u64,
                "cycle done"
            ),
            Some(error) => tracing::error!(
                window = %window,
                messages_sent = self.delivery.messages_sent,
                pending = self.pending,
                elapsed_ms = self.elapsed.as_millis() as u64,
                "cycle could not poll Weiban: {error}; the same window is fetched again next cycle"
            ),
        }
        for (destination, reason) in &self.delivery.waiting {
            tracing::warn!(%destination, "not delivered: {reason}");
        }
        for reason in &self.delivery.on_hold.reasons {
            tracing::warn!("held, not yet routed: {reason}; they go out when the data is there, or after `directory.hold_for` to the route's own robots and mailboxes or `[fallback]`");
        }
    }
}
