//! Per-robot pacing: at most N messages in any rolling minute, shared by every route.
//!
//! WeCom blocks a robot that gets more than 20 messages a minute (45009), sometimes for ten
//! minutes. We never find the limit by hitting it: each robot URL keeps the start times of its
//! recent sends, and a send waits until the oldest of the last N leaves the window. The window
//! is a second longer than a minute, so that network jitter cannot make the robot count one
//! more than we did.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(61);

/// Send slots per robot. Cheap to clone; clones share the counts.
#[derive(Clone, Default)]
pub(crate) struct Pacer {
    per_window: usize,
    sent: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
}

impl Pacer {
    /// `per_minute = 0` turns pacing off (benchmarks against a loopback robot).
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_window: per_minute as usize,
            sent: Arc::default(),
        }
    }

    /// Waits until `robot` may take one more message, and counts it.
    pub async fn acquire(&self, robot: &str) {
        if self.per_window == 0 {
            return;
        }
        loop {
            let wait_until = {
                let mut sent = self.sent.lock().await;
                let times = sent.entry(robot.to_owned()).or_default();
                let now = Instant::now();
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    times.pop_front();
                }
                if times.len() < self.per_window {
                    times.push_back(now);
                    return;
                }
                match times.front() {
                    Some(oldest) => *oldest + WINDOW,
                    None => now,
                }
            };
            tracing::debug!("robot pacing: waiting for a free slot");
            tokio::time::sleep_until(wait_until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_n_in_a_window() {
        let pacer = Pacer::new(20);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..45 {
            pacer.acquire("robot").await;
            times.push(Instant::now() - start);
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .filter(|u| **u - *t < Duration::from_secs(60))
                .count();
            assert!(in_window <= 20, "{in_window} sends within 60 s of send {i}");
        }
        // Another robot is not slowed down by the first.
        let before = Instant::now();
        pacer.acquire("other").await;
        assert_eq!(Instant::now(), before);
    }
}
