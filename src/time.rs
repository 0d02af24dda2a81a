//! Time: the one clock, and the one place unix seconds become times in the configured zone
//! (logs, CLI output and messages all show times through here).
//!
//! Wall time is the system's wall clock moved by how far tokio's clock is from the real
//! monotonic clock. In a running daemon the two monotonic clocks agree, so the daemon sees
//! the system's wall time, steps of the system clock included (the run loop notices them).
//! Under tokio's paused time (the tests), tokio's clock stands still or jumps ahead, and wall
//! time does the same: quiet hours, report periods, pacing, back-offs and the schedule all
//! follow one clock that a test drives, with nothing waited for. No other module reads the
//! system clock; monotonic waits use `tokio::time::Instant`.

use std::time::{Duration, SystemTime};

use crate::zone::Zone;
use chrono::{DateTime, Utc};

/// Now, as a UTC time.
pub fn now_utc() -> DateTime<Utc> {
    let virtual_now = tokio::time::Instant::now().into_std();
    let real_now = std::time::Instant::now();
    let wall = SystemTime::now();
    let wall = match virtual_now.checked_duration_since(real_now) {
        Some(ahead) if ahead > Duration::ZERO => wall.checked_add(ahead),
        _ => wall.checked_sub(real_now.saturating_duration_since(virtual_now)),
    }
    .unwrap_or(wall);
    DateTime::<Utc>::from(wall)
}

/// Now, in unix seconds.
pub fn unix_now() -> i64 {
    now_utc().timestamp()
}

/// The date of unix second `at` in `tz`.
pub fn date_of(at: i64, tz: Zone) -> chrono::NaiveDate {
    DateTime::from_timestamp(at, 0)
        .unwrap_or_default()
        .with_timezone(&tz)
        .date_naive()
}

/// `unix` seconds as a time in `tz`; `None` when out of chrono's range.
pub(crate) fn local(tz: Zone, unix: i64) -> Option<DateTime<Zone>> {
    DateTime::from_timestamp(unix, 0).map(|t| t.with_timezone(&tz))
}

/// `unix` seconds in `tz` as RFC 3339, with the year and the zone's offset
/// (`2026-11-26T20:00:00+08:00`); the bare number when out of range.
pub(crate) fn rfc3339(tz: Zone, unix: i64) -> String {
    local(tz, unix).map_or_else(|| unix.to_string(), |t| t.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_time_follows_tokios_clock_when_it_is_paused() {
        let before = unix_now();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let after = unix_now();
        assert!(
            (3599..=3601).contains(&(after - before)),
            "{}",
            after - before
        );
    }

    #[tokio::test]
    async fn wall_time_is_the_systems_when_time_runs() {
        let system = Utc::now().timestamp();
        assert!((unix_now() - system).abs() <= 1);
    }

    #[test]
    fn times_carry_year_and_offset() {
        assert_eq!(
            rfc3339(crate::zone::Zone::shanghai(), 1_736_314_633),
            "2025-01-08T13:37:13+08:00"
        );
        assert_eq!(
            rfc3339(crate::zone::Zone::shanghai(), i64::MAX),
            i64::MAX.to_string()
        );
    }
}
