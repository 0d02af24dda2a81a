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

/// Where the slice after one that ended at `end` starts, in a catch-up that began at `now`.
///
/// The overlap is for records Weiban lists late: a loss is taken to be listed within the
/// overlap of its outflow time (what a regular poll assumes too), so what left before
/// `now - overlap` was listed when the last slice was fetched, at `now` or later. The next
/// slice then starts where that one ended (its last second again, never a gap), and an
/// overlap before it only when that end lies within the overlap of now: fetching the overlap
/// again at every slice made a 100 000-loss catch-up fetch a fifth of it twice.
pub(super) fn next_slice_start(end: i64, now: i64, overlap: i64) -> i64 {
    now.saturating_sub(overlap)
        .max(end.saturating_sub(overlap))
        .min(end)
}

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
    /// or says no count. A slice always reaches past the overlap, so that the next poll moves
    /// on even when it starts an overlap before this slice's end (after a restart, or when the
    /// end is within the overlap of now: [`next_slice_start`]).
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

#[cfg(test)]
mod tests {
    use super::next_slice_start;

    const OVERLAP: i64 = 900;
    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_slice_long_past_is_followed_from_its_end() {
        let end = NOW - 3 * 3600;
        assert_eq!(next_slice_start(end, NOW, OVERLAP), end);
    }

    #[test]
    fn a_slice_ending_within_the_overlap_of_now_is_fetched_again_from_now_minus_the_overlap() {
        let end = NOW - 300;
        assert_eq!(next_slice_start(end, NOW, OVERLAP), NOW - OVERLAP);
    }

    #[test]
    fn never_more_than_an_overlap_back_nor_past_the_end() {
        for end in [
            NOW - 10 * OVERLAP,
            NOW - OVERLAP - 1,
            NOW - OVERLAP,
            NOW - 1,
            NOW,
        ] {
            let start = next_slice_start(end, NOW, OVERLAP);
            assert!(start >= end - OVERLAP && start <= end, "{end}: {start}");
        }
        assert_eq!(next_slice_start(NOW, NOW, 0), NOW, "no overlap configured");
    }
}
