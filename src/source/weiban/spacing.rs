//! Evenly spaced requests: one per `period`, never a burst, so that no rolling minute ever
//! holds more than Weiban's quota (600 a minute per API).
//!
//! Each caller takes the next free slot (now, or one period after the last slot taken) and
//! sleeps until it on tokio's clock, so paused time in the tests drives it like everything else.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The next free slot, shared by every request of one client.
#[derive(Debug)]
pub(crate) struct Spacing {
    period: Duration,
    next: Mutex<Option<Instant>>,
}

impl Spacing {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            next: Mutex::new(None),
        }
    }

    /// Waits for this request's slot.
    pub async fn wait(&self) {
        let slot = {
            let mut next = self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let slot = next.map_or(now, |at| at.max(now));
            *next = Some(slot + self.period);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_period_and_never_burst() {
        let spacing = std::sync::Arc::new(Spacing::new(Duration::from_millis(100)));
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..5 {
            let spacing = std::sync::Arc::clone(&spacing);
            handles.push(tokio::spawn(async move {
                spacing.wait().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for handle in handles {
            times.push(handle.await.unwrap_or(start) - start);
        }
        times.sort();
        let millis: Vec<u128> = times.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [0, 100, 200, 300, 400]);
        // After a quiet spell, the next request goes at once.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = Instant::now();
        spacing.wait().await;
        assert_eq!(Instant::now(), before);
    }
}
