//! When the store flushes: what each send waits for, and what a crash can repeat.
//!
//! Two kinds of writes wait for a flush, with different stakes:
//! - **Recordings** (a page's seen marks, outbox records and holds) are flushed before the next
//!   send, always: no message may report a loss that a crash could still forget.
//! - **Completions** (losses taken out of the outbox after their destination accepted them)
//!   only decide what a crash repeats: a completion that did not reach the disk is a message
//!   sent again, never a loss. A sled flush costs a log write on sled's I/O pool, which wakes
//!   all of its idle threads, so completions are flushed in groups: a flush begins at the
//!   latest [`COMPLETION_GAP`] after the last one while completions wait — before a send that
//!   starts later than that, or during a send still running then (a paced robot waiting its
//!   turn, a slow answer: `Attempt::send_settling`) — or as soon as
//!   [`MAX_UNFLUSHED_COMPLETIONS`] wait, and when a destination's attempt ends
//!   ([`Store::settle`]). sled's own flusher also writes every half second.
//!
//! A completion therefore waits for the disk at most the gap (10 ms) plus the flush's own
//! time, and a crash repeats the message in flight plus at most those accepted in the 10 ms
//! before it (about [`MAX_UNFLUSHED_COMPLETIONS`] at most). A real robot takes longer than the
//! gap to answer, so there every completion is flushed before or while the next message goes
//! out; only a burst into a fast local endpoint shares flushes.
//!
//! The state is shared by every handle (and corp) of one database, since a flush is the
//! database's. Time is tokio's, so tests under paused time decide when a gap has passed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Store, StoreError};

/// A flush begins at the latest this long after the last one while completions wait (before
/// or during a send, see the module's doc).
pub const COMPLETION_GAP: Duration = Duration::from_millis(10);
/// At most this many completions wait for a flush, however fast the sends.
pub(crate) const MAX_UNFLUSHED_COMPLETIONS: usize = 16;

/// What waits for the next flush, and when the last one was.
#[derive(Debug)]
pub(crate) struct Flushes {
    /// Recordings wait: the next send flushes first.
    records: AtomicBool,
    /// Completions waiting.
    completions: AtomicUsize,
    last: Mutex<Instant>,
}

impl Default for Flushes {
    fn default() -> Self {
        Self {
            records: AtomicBool::new(false),
            completions: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }
}

impl Flushes {
    pub(super) fn recorded(&self) {
        self.records.store(true, Ordering::Release);
    }

    pub(super) fn completed(&self) {
        self.completions.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn records_wait(&self) -> bool {
        self.records.load(Ordering::Acquire)
    }

    fn completions_wait(&self) -> usize {
        self.completions.load(Ordering::Acquire)
    }

    /// Whether anything waits for a flush.
    fn waiting(&self) -> bool {
        self.records_wait() || self.completions_wait() > 0
    }

    /// When the completions waiting now are due for a flush: a gap after the last flush.
    /// `None` when none wait.
    fn completions_due(&self) -> Option<Instant> {
        let last = *self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (self.completions_wait() > 0).then_some(last + COMPLETION_GAP)
    }

    /// Whether a send starting `now` must flush first.
    fn due_before_send(&self, now: Instant) -> bool {
        self.records_wait()
            || self.completions_wait() >= MAX_UNFLUSHED_COMPLETIONS
            || self.completions_due().is_some_and(|due| now >= due)
    }

    /// Called before a flush: what was written until now is in it. A write racing the flush
    /// marks itself again, so at worst it is flushed twice.
    fn taken(&self, now: Instant) -> (bool, usize) {
        *self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
        (
            self.records.swap(false, Ordering::AcqRel),
            self.completions.swap(0, Ordering::AcqRel),
        )
    }

    /// Called when a flush failed: what it should have made durable waits again.
    fn restore(&self, (records, completions): (bool, usize)) {
        if records {
            self.records.store(true, Ordering::Release);
        }
        self.completions.fetch_add(completions, Ordering::AcqRel);
    }
}

impl Store {
    /// Waits until everything written so far is on disk: every write path but completions
    /// calls it before it returns. On this thread, not on another: sled's `flush_async` and
    /// tokio's `spawn_blocking` both move the work to a thread of their own, which under
    /// paused time (the tests) lets the clock jump ahead mid-write, and which costs 10 MB of
    /// peak memory in the benchmark (malloc's per-thread arenas: 34 MB instead of 24.6 MB for
    /// 10 000 losses). The fsync holds this thread for milliseconds, in a daemon whose sends
    /// wait seconds.
    pub(super) async fn durable(&self) -> Result<(), StoreError> {
        let taken = self.flushes.taken(Instant::now());
        self.db.flush().map(drop).map_err(|e| {
            self.flushes.restore(taken);
            StoreError::from(e)
        })
    }

    /// The barrier every send passes: what was recorded and not flushed yet is made durable
    /// now, so that no message can report a loss that a crash could still forget; waiting
    /// completions are flushed when due (the module's doc). Free when nothing is due.
    pub async fn durable_before_send(&self) -> Result<(), StoreError> {
        if self.flushes.due_before_send(Instant::now()) {
            self.durable().await?;
        }
        Ok(())
    }

    /// When the completions waiting now are due for a flush (`Attempt::send_settling`): a gap
    /// after the last flush. `None` when none wait.
    pub fn completions_due(&self) -> Option<Instant> {
        self.flushes.completions_due()
    }

    /// Makes waiting completions durable: when a destination's attempt ends, so that what it
    /// delivered is on disk before anything else looks (the next cycle, `state`, a restart).
    pub async fn settle(&self) -> Result<(), StoreError> {
        if self.flushes.waiting() {
            self.durable().await?;
        }
        Ok(())
    }

    /// Whether recordings wait for a flush (tests of the barrier).
    #[cfg(test)]
    pub(crate) fn records_await_flush(&self) -> bool {
        self.flushes.records_wait()
    }

    /// Whether completions wait for a flush (tests of the barrier).
    #[cfg(test)]
    pub(crate) fn completions_wait(&self) -> bool {
        self.flushes.completions_wait() > 0
    }

    /// Whether anything waits for a flush (tests of the barrier).
    #[cfg(test)]
    pub(crate) fn awaits_flush(&self) -> bool {
        self.flushes.waiting()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn recordings_flush_before_every_send_and_completions_in_groups() {
        let flushes = Flushes::default();
        assert!(!flushes.due_before_send(Instant::now()), "nothing waits");

        flushes.recorded();
        assert!(
            flushes.due_before_send(Instant::now()),
            "a recording always"
        );
        flushes.taken(Instant::now());

        flushes.completed();
        assert!(
            !flushes.due_before_send(Instant::now()),
            "a completion right after a flush waits"
        );
        tokio::time::advance(COMPLETION_GAP).await;
        assert!(
            flushes.due_before_send(Instant::now()),
            "a completion waits no longer than the gap"
        );
        flushes.taken(Instant::now());

        for _ in 0..MAX_UNFLUSHED_COMPLETIONS - 1 {
            flushes.completed();
        }
        assert!(!flushes.due_before_send(Instant::now()));
        flushes.completed();
        assert!(
            flushes.due_before_send(Instant::now()),
            "no more than {MAX_UNFLUSHED_COMPLETIONS} completions wait"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_flush_leaves_everything_waiting() {
        let flushes = Flushes::default();
        flushes.recorded();
        flushes.completed();
        let taken = flushes.taken(Instant::now());
        assert!(!flushes.due_before_send(Instant::now()));
        flushes.restore(taken);
        assert!(flushes.records_wait());
        assert_eq!(flushes.completions_wait(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn completing_waits_for_the_settle_of_the_attempt() {
        let store = Store::temporary().unwrap();
        store.flushes.completed();
        assert!(store.awaits_flush());
        store.durable_before_send().await.unwrap();
        assert!(store.awaits_flush(), "within the gap: not flushed yet");
        store.settle().await.unwrap();
        assert!(!store.awaits_flush(), "an attempt's end flushes");
    }
}
