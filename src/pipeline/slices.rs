//! Long windows in slices: a first run's look-back or the window after an outage may hold
//! tens of thousands of losses. Recording them all before the first message goes out would
//! hold the whole window in the outbox (and in memory); instead the window is counted (one
//! request of one item) and polled in time slices of about [`SLICE_LOSSES`], each delivered
//! before the next is fetched. Each slice is a whole window of its own, so the window moves
//! slice by slice and a crash resumes at the last whole slice. A slice starts where the last
//! one ended, not an overlap before it, unless that end is within the overlap of now
//! ([`Pipeline::window_after`]).

use super::{CycleError, Pipeline, PollReport};
use crate::shutdown::Shutdown;
use crate::source::Window;
use crate::time::unix_now;

/// Losses one poll records before they are delivered. A long window (a first run's look-back,
/// an outage, a backfill-sized burst) is polled in time slices of about this many, each
/// delivered before the next is fetched, so the outbox, and the memory that holds it, stay
/// bounded whatever the window. A regular window is polled whole, with no extra request.
pub(crate) const SLICE_LOSSES: u64 = 2_000;

impl Pipeline {
    /// Polls up to `now`; a long window slice by slice ([`SLICE_LOSSES`]), each slice's
    /// losses delivered before the next slice is fetched. The report covers every slice.
    pub(super) async fn poll_in_slices(
        &self,
        now: i64,
        shutdown: &Shutdown,
    ) -> Result<PollReport, CycleError> {
        let mut total = self.poll(now).await?;
        while total.more && !shutdown.is_shutdown() {
            // What a destination refuses stays pending and is retried: never stop polling.
            if let Err(e) = self.deliver(unix_now(), shutdown).await {
                tracing::error!("delivering a slice of the window failed: {e}");
            }
            let next = self.poll_after(now, true).await?;
            total = PollReport {
                window: match (total.window, next.window) {
                    (Some(a), Some(b)) => Some(Window {
                        start: a.start.min(b.start),
                        end: a.end.max(b.end),
                    }),
                    (a, b) => a.or(b),
                },
                fetched: total.fetched + next.fetched,
                new_losses: total.new_losses + next.new_losses,
                more: next.more,
            };
        }
        Ok(total)
    }

    /// The first slice of a long `window` that holds about [`SLICE_LOSSES`] losses, by the
    /// count Weiban reports (one request of one item); the whole window when it holds fewer
    /// or says no count. A slice always reaches past the overlap, so that the next poll,
    /// which starts an overlap before this slice's end, moves on.
    pub(super) async fn slice(&self, window: Window) -> Result<Window, CycleError> {
        let (count, _) = self.weiban.probe(window).await?;
        let Some(total) = count.filter(|n| *n > SLICE_LOSSES) else {
            return Ok(window);
        };
        let span = i128::from(window.end - window.start);
        let share = span * i128::from(SLICE_LOSSES) / i128::from(total);
        let least = self.overlap.saturating_add(60);
        let end = window
            .start
            .saturating_add(i64::try_from(share).unwrap_or(i64::MAX).max(least))
            .min(window.end);
        tracing::info!(
            losses = total,
            slice_secs = end - window.start,
            "a long window: polled in slices of about {SLICE_LOSSES} losses, each delivered before the next is fetched"
        );
        Ok(Window {
            start: window.start,
            end,
        })
    }
}
