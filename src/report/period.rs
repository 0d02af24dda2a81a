//! Calendar periods in the configured zone: a day, a week (Monday to Sunday), a month, or
//! any span of whole days given as `2026-11-16..2026-11-22`.
//!
//! A period is a pair of dates, both included; its window in unix seconds runs from the first
//! day's midnight to the second before the midnight after the last day, in the zone, so that
//! a loss at 23:59:59 on Sunday belongs to that week and one at 00:00:00 on Monday to the next.

use crate::zone::Zone;
use chrono::{Datelike, Days, Months, NaiveDate, TimeZone};

use crate::source::Window;

pub use crate::config::PeriodKind;

/// Whole days from `first` to `last`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl Period {
    /// The last whole period of `kind` that ended before `today`.
    pub fn last_whole(kind: PeriodKind, today: NaiveDate) -> Self {
        let yesterday = today.pred_opt().unwrap_or(today);
        match kind {
            PeriodKind::Day => Self {
                first: yesterday,
                last: yesterday,
            },
            PeriodKind::Week => {
                let monday = today - Days::new(u64::from(today.weekday().num_days_from_monday()));
                let last = monday.pred_opt().unwrap_or(monday);
                Self {
                    first: last - Days::new(6),
                    last,
                }
            }
            PeriodKind::Month => {
                let this_month = today.with_day(1).unwrap_or(today);
                let last = this_month.pred_opt().unwrap_or(this_month);
                Self {
                    first: last.with_day(1).unwrap_or(last),
                    last,
                }
            }
        }
    }

    /// Parses `2026-11-16..2026-11-22` (both days included).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (first, last) = text.split_once("..").ok_or_else(|| {
            format!("`{text}` is not a period; write FIRST..LAST, e.g. 2026-11-16..2026-11-22")
        })?;
        let date = |s: &str| {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map_err(|e| format!("`{s}` is not a date (YYYY-MM-DD): {e}"))
        };
        let (first, last) = (date(first)?, date(last)?);
        if last < first {
            return Err(format!("period `{text}` ends before it starts"));
        }
        // Keeps the date arithmetic of trends and previous periods far from chrono's limits.
        let sane = 2000..=2199;
        if !sane.contains(&first.year()) || !sane.contains(&last.year()) {
            return Err(format!(
                "period `{text}` is not between the years 2000 and 2199"
            ));
        }
        Ok(Self { first, last })
    }

    /// How many days the period has.
    pub fn days(&self) -> u64 {
        (self.last - self.first).num_days().unsigned_abs() + 1
    }

    /// The period just before: the previous calendar month for a whole month, else as many
    /// days right before.
    pub fn previous(&self) -> Self {
        let whole_month = self.first.day() == 1
            && self.last.month() == self.first.month()
            && self.last.year() == self.first.year()
            && self.last.succ_opt().is_some_and(|next| next.day() == 1);
        if whole_month {
            let first = self.first - Months::new(1);
            let last = self.first.pred_opt().unwrap_or(first);
            return Self { first, last };
        }
        let last = self.first.pred_opt().unwrap_or(self.first);
        Self {
            first: self.first - Days::new(self.days()),
            last,
        }
    }

    /// The period's outflow times, in unix seconds, both ends included.
    pub fn window(&self, tz: Zone) -> Window {
        let after = self.last.succ_opt().unwrap_or(self.last);
        Window {
            start: midnight(self.first, tz),
            end: midnight(after, tz) - 1,
        }
    }

    /// Whether `date` is inside.
    pub fn contains(&self, date: NaiveDate) -> bool {
        (self.first..=self.last).contains(&date)
    }

    /// `2026-11-16..2026-11-22`: the form `--period` takes and the store records.
    pub fn key(&self) -> String {
        format!("{}..{}", self.first, self.last)
    }

    /// `2026-11-16 ~ 2026-11-22`, or one date for one day.
    pub fn label(&self) -> String {
        if self.first == self.last {
            self.first.to_string()
        } else {
            format!("{} ~ {}", self.first, self.last)
        }
    }
}

/// The first second of `date` in `tz` (the first existing one, should midnight be skipped by a
/// daylight-saving change).
pub fn midnight(date: NaiveDate, tz: Zone) -> i64 {
    (0..4)
        .find_map(|hour| {
            tz.from_local_datetime(&date.and_hms_opt(hour, 0, 0)?)
                .earliest()
        })
        .map_or_else(
            || date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp(),
            |t| t.timestamp(),
        )
}

pub use crate::time::date_of;

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn last_whole_periods_end_before_today() {
        let thursday = date("2026-11-26");
        let week = Period::last_whole(PeriodKind::Week, thursday);
        assert_eq!(week.key(), "2026-11-16..2026-11-22");
        let monday = date("2026-11-23");
        assert_eq!(Period::last_whole(PeriodKind::Week, monday), week);
        assert_eq!(
            Period::last_whole(PeriodKind::Day, thursday).key(),
            "2026-11-25..2026-11-25"
        );
        assert_eq!(
            Period::last_whole(PeriodKind::Month, date("2026-03-01")).key(),
            "2026-02-01..2026-02-28"
        );
    }

    #[test]
    fn previous_is_the_month_or_as_many_days_before() {
        let march = Period::parse("2026-03-01..2026-03-31").unwrap();
        assert_eq!(march.previous().key(), "2026-02-01..2026-02-28");
        let week = Period::parse("2026-11-16..2026-11-22").unwrap();
        assert_eq!(week.previous().key(), "2026-11-09..2026-11-15");
        // Thirteen months from March to March are no month: as many days before.
        let span = Period::parse("2025-03-01..2026-03-31").unwrap();
        assert_eq!(span.previous().last.to_string(), "2025-02-28");
        assert_eq!(span.previous().days(), span.days());
    }

    #[test]
    fn windows_are_whole_local_days() {
        let tz = crate::zone::Zone::shanghai();
        let day = Period::parse("2026-11-16..2026-11-16").unwrap();
        let w = day.window(tz);
        assert_eq!(w.end - w.start, 86_399);
        assert_eq!(date_of(w.start, tz), day.first);
        assert_eq!(date_of(w.end, tz), day.first);
        assert_eq!(date_of(w.end + 1, tz), date("2026-11-17"));
    }

    #[test]
    fn bad_periods_are_explained() {
        assert!(Period::parse("2026-11-22..2026-11-16")
            .unwrap_err()
            .contains("ends before"));
        assert!(Period::parse("last week")
            .unwrap_err()
            .contains("FIRST..LAST"));
    }
}
