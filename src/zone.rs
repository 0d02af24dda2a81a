//! The configured time zone, as chrono sees it: IANA zones read at run time.
//!
//! A [`Zone`] is loaded by name from the system's tz database (`/usr/share/zoneinfo`, or
//! `TZDIR`) by jiff, and from the copy of the database built into the binary when the
//! system's lacks the zone (a slim container image without tzdata, an old tzdata). It
//! implements chrono's `TimeZone`, so that the cron crate, chrono's formatting and every
//! `DateTime<Zone>` work with it as with any zone.
//!
//! Why not chrono-tz: it compiles all 600 zones into the binary as tables of pointers, and the
//! loader relocates each of their 29 000 transitions at every start. That was 1.9 MB of the
//! binary and 1.5 MB of every process's memory (BENCHMARKS.md), for the one zone a config
//! names. A zone here is read once per process and name and kept, so [`Zone`] is `Copy` like
//! chrono-tz's was.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use chrono::{
    FixedOffset, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, Offset as _, TimeZone,
};
use jiff::tz::{AmbiguousOffset, TimeZoneDatabase};

/// The zone every config starts from.
pub const DEFAULT_ZONE: &str = "Asia/Shanghai";

/// An IANA time zone (`Asia/Shanghai`), loaded once per process and name, and kept.
#[derive(Clone, Copy)]
pub struct Zone(&'static Loaded);

struct Loaded {
    /// The name, as configured and as the tz database spells it.
    name: String,
    tz: jiff::tz::TimeZone,
}

/// A zone name that neither the system's tz database nor the built-in copy knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{}` is not a time zone of the system's tz database (/usr/share/zoneinfo, or TZDIR) or of the copy built into churn-alert: use an IANA name such as `Asia/Shanghai` or `UTC` (names are case-sensitive)",
    .0.escape_default()
)]
pub struct UnknownZone(String);

/// Every zone loaded so far. Zones are few (one per configured name), so a list will do.
static LOADED: Mutex<Vec<&'static Loaded>> = Mutex::new(Vec::new());

impl Zone {
    /// The zone called `name`, loaded on first use.
    pub fn named(name: &str) -> Result<Self, UnknownZone> {
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(zone) = loaded.iter().find(|z| z.name == name) {
            return Ok(Self(zone));
        }
        let tz = lookup(name)?;
        // Kept for the process's life: one small table per distinct zone name.
        let zone: &'static Loaded = Box::leak(Box::new(Loaded {
            name: name.to_owned(),
            tz,
        }));
        loaded.push(zone);
        Ok(Self(zone))
    }

    /// Asia/Shanghai, the default zone. The built-in database always has it; were it missing,
    /// China's fixed UTC+8 (no daylight saving since 1991) would stand in, kept apart from the
    /// zones loaded by name.
    pub fn shanghai() -> Self {
        Self::named(DEFAULT_ZONE).unwrap_or_else(|_| {
            static FIXED: OnceLock<Loaded> = OnceLock::new();
            Self(FIXED.get_or_init(|| Loaded {
                name: DEFAULT_ZONE.to_owned(),
                tz: jiff::tz::TimeZone::fixed(jiff::tz::Offset::constant(8)),
            }))
        })
    }

    /// The zone's IANA name.
    pub fn name(&self) -> &'static str {
        &self.0.name
    }

    /// The offset `offset`, in force at unix second `at`.
    fn at(self, offset: jiff::tz::Offset, at: i64) -> ZoneOffset {
        ZoneOffset {
            zone: self,
            // jiff allows offsets up to 26 hours, chrono up to 24; no zone comes near either.
            fixed: FixedOffset::east_opt(offset.seconds()).unwrap_or_else(|| chrono::Utc.fix()),
            at,
        }
    }

    /// The offset in force at the wall-clock time `local` would be with `offset`.
    fn at_local(self, local: &NaiveDateTime, offset: jiff::tz::Offset) -> ZoneOffset {
        let at = local.and_utc().timestamp() - i64::from(offset.seconds());
        self.at(offset, at)
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Zone {}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Zone {
    type Err = UnknownZone;

    fn from_str(name: &str) -> Result<Self, UnknownZone> {
        Self::named(name)
    }
}

/// A [`Zone`]'s offset at one instant, as chrono keeps it in every `DateTime<Zone>`. It shows
/// as the zone's abbreviation then (`CST`, `EDT`), as chrono-tz's did.
#[derive(Clone, Copy)]
pub struct ZoneOffset {
    zone: Zone,
    fixed: FixedOffset,
    /// The unix second it is the offset of: what the abbreviation is looked up by.
    at: i64,
}

/// One zone's one offset, whichever instant it was looked up for.
impl PartialEq for ZoneOffset {
    fn eq(&self, other: &Self) -> bool {
        (self.zone, self.fixed) == (other.zone, other.fixed)
    }
}

impl Eq for ZoneOffset {}

impl chrono::Offset for ZoneOffset {
    fn fix(&self) -> FixedOffset {
        self.fixed
    }
}

impl fmt::Debug for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_second(self.at) {
            Ok(at) => f.write_str(self.zone.0.tz.to_offset_info(at).abbreviation()),
            Err(_) => fmt::Display::fmt(&self.fixed, f),
        }
    }
}

impl TimeZone for Zone {
    type Offset = ZoneOffset;

    fn from_offset(offset: &ZoneOffset) -> Self {
        offset.zone
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> MappedLocalTime<ZoneOffset> {
        self.offset_from_local_datetime(&local.and_time(NaiveTime::MIN))
    }

    /// A wall-clock time skipped by a change of offset has none; one repeated has both,
    /// the earlier first (as chrono-tz answered).
    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> MappedLocalTime<ZoneOffset> {
        let Some(civil) = civil(local) else {
            // Beyond jiff's years (±9999): the zone's last rule, as for a UTC time there.
            return MappedLocalTime::Single(self.offset_from_utc_datetime(local));
        };
        match self.0.tz.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => {
                MappedLocalTime::Single(self.at_local(local, offset))
            }
            AmbiguousOffset::Gap { .. } => MappedLocalTime::None,
            AmbiguousOffset::Fold { before, after } => MappedLocalTime::Ambiguous(
                self.at_local(local, before),
                self.at_local(local, after),
            ),
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
        self.offset_from_utc_datetime(&utc.and_time(NaiveTime::MIN))
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
        let at = utc.and_utc().timestamp();
        // Beyond jiff's years (±9999, an `outflow_at` in milliseconds): the nearest it knows.
        let known = at.clamp(
            jiff::Timestamp::MIN.as_second(),
            jiff::Timestamp::MAX.as_second(),
        );
        let offset = jiff::Timestamp::from_second(known)
            .map_or(jiff::tz::Offset::UTC, |t| self.0.tz.to_offset(t));
        self.at(offset, known)
    }
}

/// `name` from the system's tz database, or from the built-in copy when the system's lacks it
/// (no database at all, or an old one). Exactly as spelled: jiff would also take
/// `asia/shanghai`, which IANA, chrono-tz and earlier releases do not, and it answers
/// `Etc/Unknown` with a zone that has no name.
fn lookup(name: &str) -> Result<jiff::tz::TimeZone, UnknownZone> {
    static BUNDLED: OnceLock<TimeZoneDatabase> = OnceLock::new();
    lookup_in(
        name,
        jiff::tz::db(),
        BUNDLED.get_or_init(TimeZoneDatabase::bundled),
    )
}

fn lookup_in(
    name: &str,
    system: &TimeZoneDatabase,
    bundled: &TimeZoneDatabase,
) -> Result<jiff::tz::TimeZone, UnknownZone> {
    let exact = |tz: jiff::tz::TimeZone| (tz.iana_name() == Some(name)).then_some(tz);
    system
        .get(name)
        .ok()
        .and_then(exact)
        .or_else(|| bundled.get(name).ok().and_then(exact))
        .ok_or_else(|| UnknownZone(name.to_owned()))
}

/// chrono's wall-clock time as jiff's; `None` outside jiff's range (years -9999 to 9999).
fn civil(local: &NaiveDateTime) -> Option<jiff::civil::DateTime> {
    use chrono::{Datelike, Timelike};
    jiff::civil::DateTime::new(
        i16::try_from(local.year()).ok()?,
        i8::try_from(local.month()).ok()?,
        i8::try_from(local.day()).ok()?,
        i8::try_from(local.hour()).ok()?,
        i8::try_from(local.minute()).ok()?,
        i8::try_from(local.second()).ok()?,
        // chrono keeps a leap second as second 59 with a nanosecond count past a billion.
        i32::try_from(local.nanosecond().min(999_999_999)).ok()?,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    /// Zones with daylight saving either way of the equator, a half-hour one, a 45-minute one
    /// and the default.
    const ZONES: [&str; 6] = [
        "Asia/Shanghai",
        "America/New_York",
        "Europe/Berlin",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
        "UTC",
    ];

    #[test]
    fn offsets_agree_with_chrono_tz_from_utc() {
        for name in ZONES {
            let zone = Zone::named(name).unwrap();
            let oracle: chrono_tz::Tz = name.parse().unwrap();
            // Every 7 hours from 2000 to 2035: every hour of the day, every season.
            for at in (946_684_800..2_051_222_400).step_by(7 * 3600) {
                let utc = DateTime::<Utc>::from_timestamp(at, 0).unwrap();
                let (ours, theirs) = (utc.with_timezone(&zone), utc.with_timezone(&oracle));
                assert_eq!(
                    ours.offset().fix(),
                    theirs.offset().fix(),
                    "{name} at {utc}"
                );
                assert_eq!(ours.to_string(), theirs.to_string(), "{name} at {utc}");
            }
        }
    }

    #[test]
    fn wall_clock_times_agree_with_chrono_tz_across_changes() {
        for name in ZONES {
            let zone = Zone::named(name).unwrap();
            let oracle: chrono_tz::Tz = name.parse().unwrap();
            // Every 15 minutes of 2025 and 2026: each gap and fold of the year.
            let start = NaiveDate::from_ymd_opt(2025, 1, 1)
                .unwrap()
                .and_time(NaiveTime::MIN);
            for step in 0..(2 * 366 * 96) {
                let local = start + chrono::Duration::minutes(15 * step);
                let ours = zone.from_local_datetime(&local).map(|t| t.timestamp());
                let theirs = oracle.from_local_datetime(&local).map(|t| t.timestamp());
                assert_eq!(ours, theirs, "{name} at {local}");
            }
        }
    }

    #[test]
    fn a_zone_is_loaded_once_and_shows_its_name() {
        let a = Zone::named("Asia/Shanghai").unwrap();
        let b: Zone = "Asia/Shanghai".parse().unwrap();
        assert!(std::ptr::eq(a.0, b.0));
        assert_eq!(a, Zone::shanghai());
        assert_eq!(a.to_string(), "Asia/Shanghai");
        let utc = DateTime::<Utc>::from_timestamp(1_736_314_633, 0).unwrap();
        assert_eq!(
            utc.with_timezone(&a).to_rfc3339(),
            "2025-01-08T13:37:13+08:00"
        );
    }

    #[test]
    fn unknown_names_are_refused_by_name() {
        for bad in [
            "Mars/Olympus",
            "",
            "  ",
            "../../etc/passwd",
            "asia/shanghai",
            "Etc/Unknown",
        ] {
            let err = Zone::named(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
            assert!(err.to_string().contains("case-sensitive"), "{err}");
        }
    }

    #[test]
    fn a_zone_the_system_lacks_comes_from_the_built_in_copy() {
        let lacking = TimeZoneDatabase::none();
        let bundled = TimeZoneDatabase::bundled();
        let tz = lookup_in("Asia/Kathmandu", &lacking, &bundled).unwrap();
        assert_eq!(tz.iana_name(), Some("Asia/Kathmandu"));
        let at = jiff::Timestamp::from_second(1_736_314_633).unwrap();
        assert_eq!(tz.to_offset(at).seconds(), 20_700);
        assert!(lookup_in("asia/kathmandu", &lacking, &bundled).is_err());
        assert!(lookup_in("Mars/Olympus", &lacking, &bundled).is_err());
    }

    #[test]
    fn times_past_the_year_9999_keep_the_zones_offset() {
        let zone = Zone::shanghai();
        let far = DateTime::<Utc>::from_timestamp(400_000_000_000, 0).unwrap();
        assert_eq!(
            far.with_timezone(&zone).offset().fix().local_minus_utc(),
            8 * 3600
        );
        let local = far.naive_utc();
        assert!(zone.from_local_datetime(&local).single().is_some());
    }
}
