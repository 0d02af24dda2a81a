//! Retry stage policy: what a destination's state becomes after a failed send.
//!
//! Permanent faults wait for a person; blocked robots and transient faults are left alone for
//! `wecom.blocked_wait`, doubling per failure in a row up to ten minutes (or `blocked_wait`
//! itself, if longer), by the shared [`Backoff`]. Pure.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::sink::SendError;
use crate::store::{DeliveryStatus, DestinationState};

/// The longest a destination is left alone between attempts, unless `blocked_wait` is longer.
const LONGEST_WAIT: Duration = Duration::from_secs(600);

/// The state after `err` at `now`, following `previous` (the streak so far).
pub(crate) fn after_failure(
    previous: Option<&DestinationState>,
    err: &SendError,
    now: i64,
    blocked_wait: Duration,
) -> DestinationState {
    // A skipped-mailbox state counts skipped losses, not failures: no streak to continue.
    let previous = previous.filter(|p| p.status != DeliveryStatus::Skipped);
    let attempts = previous.map_or(0, |p| p.attempts) + 1;
    let since = previous.map_or(now, |p| p.since);
    let (status, retry_at) = match err {
        SendError::Permanent { .. } | SendError::Rejected { .. } => (DeliveryStatus::Failed, None),
        SendError::Blocked | SendError::Transient { .. } => {
            let policy = Backoff {
                base: blocked_wait,
                cap: blocked_wait.max(LONGEST_WAIT),
            };
            let wait = policy.delay(attempts - 1, 1.0).as_secs().max(1);
            let wait = i64::try_from(wait).unwrap_or(i64::MAX / 4);
            (DeliveryStatus::Retrying, Some(now.saturating_add(wait)))
        }
    };
    DestinationState {
        status,
        reason: err.to_string(),
        since,
        retry_at,
        attempts,
        target: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_robots_wait_longer_each_time_up_to_ten_minutes() {
        let wait = Duration::from_secs(60);
        let mut state = None;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let next = after_failure(state.as_ref(), &SendError::Blocked, 1000, wait);
            waits.push(next.retry_at.unwrap() - 1000);
            assert_eq!(next.since, 1000, "the streak keeps its start");
            state = Some(next);
        }
        assert_eq!(waits, [60, 120, 240, 480, 600, 600]);
        assert_eq!(state.unwrap().attempts, 6);
    }

    #[test]
    fn permanent_faults_wait_for_a_person() {
        let err = SendError::Permanent {
            reason: "errcode 93000".into(),
        };
        let state = after_failure(None, &err, 5, Duration::from_secs(60));
        assert_eq!(state.status, DeliveryStatus::Failed);
        assert_eq!(state.retry_at, None);
        assert!(state.reason.contains("93000"));
    }
}
