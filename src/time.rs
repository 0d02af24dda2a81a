//! Time: now in unix seconds, and the one place unix seconds become times in the configured
//! zone (logs, CLI output and messages all show times through here).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Now, in unix seconds.
pub(crate) fn unix_now() -> i64 {
    Utc::now().timestamp()
}

/// `unix` seconds as a time in `tz`; `None` when out of chrono's range.
pub(crate) fn local(tz: Tz, unix: i64) -> Option<DateTime<Tz>> {
    DateTime::from_timestamp(unix, 0).map(|t| t.with_timezone(&tz))
}

/// `unix` seconds in `tz` as RFC 3339, with the year and the zone's offset
/// (`2026-11-26T20:00:00+08:00`); the bare number when out of range.
pub(crate) fn rfc3339(tz: Tz, unix: i64) -> String {
    local(tz, unix).map_or_else(|| unix.to_string(), |t| t.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_carry_year_and_offset() {
        assert_eq!(
            rfc3339(chrono_tz::Asia::Shanghai, 1_736_314_633),
            "2025-01-08T13:37:13+08:00"
        );
        assert_eq!(
            rfc3339(chrono_tz::Asia::Shanghai, i64::MAX),
            i64::MAX.to_string()
        );
    }
}
