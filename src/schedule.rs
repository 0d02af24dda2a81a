//! Crontab expressions as an operator means them, evaluated in an IANA time zone.
//!
//! The `cron` crate wants a seconds field and numbers weekdays from Sunday = 1, so crontab's
//! `0 9 * * 1-5` would mean Sunday–Thursday there. [`Schedule::parse`] accepts what a crontab
//! accepts — 5 fields with POSIX weekdays (0 and 7 = Sunday, names too), 6 fields with a
//! leading seconds field, and `@hourly`-style shortcuts — and rewrites the weekday field into
//! the crate's numbering before handing it over. Like cron, when both the day-of-month and
//! the weekday are restricted, a day matching either one fires (`0 9 1 * MON` runs on the
//! first of the month and on Mondays); the crate alone would require both.

use std::str::FromStr;

use crate::zone::Zone;
use chrono::{DateTime, NaiveTime, TimeZone, Utc};

/// Why a schedule could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Timezone(#[from] crate::zone::UnknownZone),
    #[error("`{expr}` is not a valid schedule: {reason}")]
    Cron { expr: String, reason: String },
}

/// A parsed schedule bound to its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// One schedule, or two whose runs are merged (day-of-month OR weekday).
    inner: Vec<cron::Schedule>,
    tz: Zone,
}

impl Schedule {
    /// Parses a crontab expression (5 or 6 fields, or a shortcut) for time zone `tz`.
    pub fn parse(expr: &str, tz: &str) -> Result<Self, ScheduleError> {
        let tz: Zone = tz.parse().map_err(ScheduleError::Timezone)?;
        let inner = to_cron_crate(expr)?
            .iter()
            .map(|cron_expr| {
                cron::Schedule::from_str(cron_expr).map_err(|e| ScheduleError::Cron {
                    expr: expr.to_owned(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { inner, tz })
    }

    pub fn timezone(&self) -> Zone {
        self.tz
    }

    /// The first run strictly after `now`, in the schedule's zone.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Zone>> {
        self.upcoming(now, 1).into_iter().next()
    }

    /// The time between the next two runs: the polling interval, for a regular schedule.
    pub fn interval(&self) -> Option<std::time::Duration> {
        match self.upcoming(crate::time::now_utc(), 2).as_slice() {
            [a, b] => (*b - *a).to_std().ok(),
            _ => None,
        }
    }

    /// The next `n` runs strictly after `now`.
    pub fn upcoming(&self, now: DateTime<Utc>, n: usize) -> Vec<DateTime<Zone>> {
        let local = now.with_timezone(&self.tz);
        let mut runs: Vec<DateTime<Zone>> = self
            .inner
            .iter()
            .flat_map(|s| s.after(&local).take(n))
            .collect();
        runs.sort();
        runs.dedup();
        runs.truncate(n);
        runs
    }
}

fn cron_error(expr: &str, reason: impl Into<String>) -> ScheduleError {
    ScheduleError::Cron {
        expr: expr.to_owned(),
        reason: reason.into(),
    }
}

/// Rewrites a crontab expression into the `cron` crate's dialect: one expression, or two
/// when day-of-month and weekday are both restricted (their runs are merged).
fn to_cron_crate(expr: &str) -> Result<Vec<String>, ScheduleError> {
    let trimmed = expr.trim();
    if trimmed.starts_with('@') {
        return match trimmed {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(vec![trimmed.to_owned()]),
            _ => Err(cron_error(
                expr,
                "unknown shortcut (use @hourly, @daily, @weekly, @monthly or @yearly)",
            )),
        };
    }
    let mut fields: Vec<String> = trimmed.split_whitespace().map(str::to_owned).collect();
    match fields.len() {
        5 => fields.insert(0, "0".to_owned()),
        6 => {}
        n => {
            return Err(cron_error(
                expr,
                format!(
                "has {n} fields; write 5 (minute hour day month weekday) or 6 (with seconds first)"
            ),
            ))
        }
    }
    for (field, (name, min, max)) in fields.iter().zip(FIELDS).take(5) {
        check_field(field, name, min, max).map_err(|reason| cron_error(expr, reason))?;
    }
    fields[5] = weekday_field(&fields[5]).map_err(|reason| cron_error(expr, reason))?;
    let restricted = |f: &str| f != "*" && f != "?";
    if restricted(&fields[3]) && restricted(&fields[5]) {
        let mut by_day = fields.clone();
        by_day[5] = "*".to_owned();
        let mut by_weekday = fields;
        by_weekday[3] = "*".to_owned();
        return Ok(vec![by_day.join(" "), by_weekday.join(" ")]);
    }
    Ok(vec![fields.join(" ")])
}

/// The fields before the weekday, in the crate's order (seconds first), with crontab's ranges.
const FIELDS: [(&str, u32, u32); 5] = [
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
];

/// Checks the numbers of one field against its crontab range, so that an error names the
/// field and the range in crontab's terms (the crate counts fields differently).
fn check_field(field: &str, name: &str, min: u32, max: u32) -> Result<(), String> {
    for item in field.split(',') {
        let (range, step) = item.split_once('/').unwrap_or((item, "1"));
        if step.parse::<u32>().ok().filter(|s| *s > 0).is_none() {
            return Err(format!(
                "the {name} field has step `{step}`; a step is a positive number"
            ));
        }
        for value in range.split('-') {
            let Ok(n) = value.parse::<u32>() else {
                // `*`, `?` and month names are the crate's to judge.
                continue;
            };
            if !(min..=max).contains(&n) {
                return Err(format!(
                    "the {name} field has `{n}`; crontab {name}s go from {min} to {max}"
                ));
            }
        }
    }
    Ok(())
}

/// Converts a POSIX weekday field into an explicit list in the crate's numbering (Sun = 1).
fn weekday_field(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: usize = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("weekday step `{step}` is not a positive number"))?;
                (range, step)
            }
            None => (item, 1),
        };
        let (first, last) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (weekday(a)?, weekday(b)?)
        } else {
            let day = weekday(range)?;
            // `5/2` in a crontab means "from Friday on, every second day".
            (day, if step > 1 { 6 } else { day })
        };
        if first > last {
            return Err(format!("weekday range `{range}` runs backwards"));
        }
        for day in (first..=last).step_by(step) {
            days[day % 7] = true;
        }
    }
    let list: Vec<String> = (0..7)
        .filter(|d| days[*d])
        .map(|d| (d + 1).to_string())
        .collect();
    Ok(list.join(","))
}

/// POSIX weekday number (0–7, 7 = Sunday) or English name, as 0–7.
fn weekday(token: &str) -> Result<usize, String> {
    const NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    if let Ok(n) = token.parse::<usize>() {
        return if n <= 7 {
            Ok(n)
        } else {
            Err(format!("weekday `{token}` is out of range 0–7"))
        };
    }
    let upper = token.to_ascii_uppercase();
    NAMES
        .iter()
        .position(|name| upper == *name)
        .ok_or_else(|| format!("`{token}` is not a weekday (0–7 or SUN–SAT)"))
}

/// A daily span, in the schedule's zone, during which deliveries are held (`21:00-08:30`).
///
/// Polling goes on; what is found waits in the outbox and goes out, merged into one digest
/// per destination, when the span ends. A span may cross midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: NaiveTime,
    end: NaiveTime,
}

impl QuietHours {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (start, end) = spec
            .split_once('-')
            .ok_or_else(|| format!("`{spec}` is not a span like 21:00-08:30"))?;
        let time = |t: &str| {
            NaiveTime::parse_from_str(t.trim(), "%H:%M")
                .map_err(|_| format!("`{t}` is not a time like 08:30"))
        };
        let (start, end) = (time(start)?, time(end)?);
        if start == end {
            return Err(format!("`{spec}` is empty: start and end are equal"));
        }
        Ok(Self { start, end })
    }

    /// Whether `at` falls in the span.
    pub fn contains(&self, at: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= at && at < self.end
        } else {
            at >= self.start || at < self.end
        }
    }

    /// If `now` is quiet, when the quiet span ends (in `now`'s zone).
    pub fn ends_after(&self, now: DateTime<Zone>) -> Option<DateTime<Zone>> {
        if !self.contains(now.time()) {
            return None;
        }
        let tz = now.timezone();
        let mut day = now.date_naive();
        if now.time() >= self.end {
            day = day.succ_opt()?;
        }
        // A local time that does not exist (a DST gap) ends the span at the next one that
        // does; one that exists twice (a DST fold) ends it at the first one still ahead.
        (0..120).find_map(|minutes| {
            let local = day.and_time(self.end + chrono::Duration::minutes(minutes));
            let candidates = tz.from_local_datetime(&local);
            [candidates.earliest(), candidates.latest()]
                .into_iter()
                .flatten()
                .find(|end| *end > now)
        })
    }
}

/// If `now` (unix seconds) falls in `quiet` hours in `tz`, when they end: the one place that
/// says it, for delivery and for `state pending`.
pub(crate) fn quiet_until(quiet: Option<QuietHours>, tz: Zone, now: i64) -> Option<i64> {
    let local = crate::time::local(tz, now)?;
    quiet?.ends_after(local).map(|end| end.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_fields_are_named_in_crontab_terms() {
        let err = Schedule::parse("61 * * * *", "UTC")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("minute field has `61`") && err.contains("0 to 59"),
            "{err}"
        );
        let err = Schedule::parse("0 24 * * *", "UTC")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hour field has `24`"), "{err}");
        let err = Schedule::parse("0 0 0 * *", "UTC").unwrap_err().to_string();
        assert!(err.contains("day-of-month field has `0`"), "{err}");
        let err = Schedule::parse("0 0 1 13 *", "UTC")
            .unwrap_err()
            .to_string();
        assert!(err.contains("month field has `13`"), "{err}");
        assert!(Schedule::parse("*/5 9-18 1,15 JAN-MAR MON-FRI", "UTC").is_ok());
    }
    use chrono::{Datelike, TimeZone, Timelike, Weekday};

    #[test]
    fn quiet_hours_cross_midnight() {
        let quiet = QuietHours::parse("21:00-08:30").unwrap();
        let tz: Zone = "Asia/Shanghai".parse().unwrap();
        let at = |h, m| tz.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap();
        assert!(quiet.contains(at(22, 0).time()) && quiet.contains(at(3, 0).time()));
        assert!(!quiet.contains(at(8, 30).time()) && !quiet.contains(at(12, 0).time()));
        assert_eq!(
            quiet.ends_after(at(22, 0)),
            Some(tz.with_ymd_and_hms(2026, 11, 26, 8, 30, 0).unwrap())
        );
        assert_eq!(quiet.ends_after(at(3, 0)), Some(at(8, 30)));
        assert_eq!(quiet.ends_after(at(12, 0)), None);
        assert!(QuietHours::parse("21:00").is_err() && QuietHours::parse("25:00-01:00").is_err());
    }

    #[test]
    fn daily_runs_keep_local_time_across_a_dst_change() {
        let schedule = Schedule::parse("0 9 * * *", "America/New_York").unwrap();
        // 2026-03-08: clocks go from 02:00 to 03:00 in New York.
        let start = Utc.with_ymd_and_hms(2026, 3, 6, 12, 0, 0).unwrap();
        let runs = schedule.upcoming(start, 4);
        for run in &runs {
            assert_eq!((run.hour(), run.minute()), (9, 0), "{run}");
        }
        assert_eq!(runs[0].to_rfc3339(), "2026-03-06T09:00:00-05:00");
        assert_eq!(runs[2].to_rfc3339(), "2026-03-08T09:00:00-04:00");
    }

    fn runs(expr: &str, n: usize) -> Vec<DateTime<Zone>> {
        let schedule = Schedule::parse(expr, "Asia/Shanghai").unwrap();
        // Saturday 2026-11-21 00:00 +08:00.
        let start = Utc.with_ymd_and_hms(2026, 11, 20, 16, 0, 0).unwrap();
        schedule.upcoming(start, n)
    }

    #[test]
    fn weekdays_follow_posix_numbering() {
        let fired = runs("0 9 * * 1-5", 10);
        let weekdays: Vec<Weekday> = fired.iter().map(|t| t.weekday()).collect();
        assert_eq!(
            &weekdays[..5],
            &[
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri
            ]
        );
        for t in &fired {
            assert_eq!((t.hour(), t.minute()), (9, 0));
            assert_eq!(t.offset().to_string(), "CST");
            assert_eq!(t.to_rfc3339().get(19..), Some("+08:00"));
            assert!(!matches!(t.weekday(), Weekday::Sat | Weekday::Sun));
        }
    }

    #[test]
    fn sunday_is_zero_and_seven_and_names_work() {
        for expr in ["0 8 * * 0", "0 8 * * 7", "0 8 * * SUN", "0 8 * * sun"] {
            let fired = runs(expr, 3);
            assert!(fired.iter().all(|t| t.weekday() == Weekday::Sun), "{expr}");
        }
        let fired = runs("0 8 * * MON-FRI", 5);
        assert!(fired
            .iter()
            .all(|t| t.weekday() != Weekday::Sat && t.weekday() != Weekday::Sun));
        let fired = runs("0 8 * * 5-7", 6);
        let days: Vec<Weekday> = fired.iter().map(|t| t.weekday()).take(3).collect();
        assert_eq!(days, [Weekday::Sat, Weekday::Sun, Weekday::Fri]);
    }

    #[test]
    fn day_of_month_and_weekday_together_mean_either() {
        // 2026-11-21 is a Saturday: next are Mon 23rd, Mon 30th, Tue Dec 1st, Mon Dec 7th.
        let fired = runs("0 9 1 * MON", 4);
        let days: Vec<u32> = fired.iter().map(|t| t.day()).collect();
        assert_eq!(days, [23, 30, 1, 7]);
    }

    #[test]
    fn six_fields_have_seconds_first() {
        let fired = runs("0 0 9 * * *", 3);
        assert_eq!(fired.len(), 3);
        for pair in fired.windows(2) {
            assert_eq!((pair[1] - pair[0]).num_hours(), 24);
        }
        assert!(fired
            .iter()
            .all(|t| (t.hour(), t.minute(), t.second()) == (9, 0, 0)));
    }

    #[test]
    fn shortcuts_and_steps() {
        let hourly = runs("@hourly", 2);
        assert_eq!((hourly[1] - hourly[0]).num_minutes(), 60);
        let every5 = runs("*/5 * * * *", 2);
        assert_eq!((every5[1] - every5[0]).num_minutes(), 5);
    }

    #[test]
    fn bad_expressions_are_explained() {
        for expr in [
            "* * *",
            "0 9 * * 8",
            "0 9 * * FUNDAY",
            "@reboot",
            "61 * * * *",
        ] {
            assert!(Schedule::parse(expr, "Asia/Shanghai").is_err(), "{expr}");
        }
        assert!(matches!(
            Schedule::parse("* * * * *", "Mars/Base"),
            Err(ScheduleError::Timezone(_))
        ));
    }
}
