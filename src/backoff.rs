//! The one retry back-off policy, shared by the Weiban client, the robot sink and the delivery
//! stages: exponential from a base, capped, with optional jitter.
//!
//! A pure function of its inputs (the jitter is a number the caller draws), so that every
//! schedule of retries can be tested without waiting.

use std::time::Duration;

/// Exponential back-off: `base · 2^attempt`, at most `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// How long to wait before retry number `attempt` (0 = the first retry).
    ///
    /// `jitter` in `[0, 1]` picks a point in the upper half of the ceiling: 1 waits the whole
    /// ceiling (deterministic schedules), a uniform random number gives "equal jitter", which
    /// spreads retries of many clients without ever retrying at once.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.cap);
        let half = ceiling / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// [`Backoff::delay`] with a random jitter.
    pub fn jittered(&self, attempt: u32) -> Duration {
        self.delay(attempt, fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_up_to_the_cap() {
        let policy = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        let full: Vec<u64> = (0..6).map(|a| policy.delay(a, 1.0).as_secs()).collect();
        assert_eq!(full, [1, 2, 4, 8, 10, 10]);
        assert_eq!(policy.delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(policy.delay(u32::MAX, 1.0), Duration::from_secs(10));
        let huge = Backoff {
            base: Duration::MAX,
            cap: Duration::MAX,
        };
        assert!(
            huge.delay(30, 0.5) > Duration::ZERO,
            "saturates, never panics"
        );
    }
}
