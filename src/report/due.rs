//! When reports run inside `run` and `once`: each whole period once, derived from periods,
//! not from the fires of the crontab.
//!
//! The store keeps, per report, when it was first seen in the config (`since`), and each
//! period it produced. At every poll, the due periods are the whole periods of the report's
//! kind that ended after `since`, or that the crontab's first fire after `since` reports (the
//! latest [`MAX_CATCH_UP`]), whose send time has come and that were not produced yet. A period's send time is the first fire of the report's crontab
//! at or after the period's end, but never before the poller's `overlap` has passed since that
//! end: Weiban records a loss late, and a report fetched at once would miss it.
//!
//! Because what is due is computed from the calendar and the record of produced periods, no
//! fire is ever "used up": moving the crontab earlier or later, a clock stepping back, a
//! daylight-saving gap that skips a fire, or downtime never skip a period, and a crontab that
//! fires more often than the period sends it once. A period is produced when Weiban answered
//! and its messages were queued in the outbox, in one transaction with the produced mark; a
//! run that failed is tried again after the next poll. A report seen for the first time
//! starts from that moment: installing the daemon does not send last week's report at once
//! (`churn-alert report` does that on demand).
//!
//! Delivery is the outbox's: a destination that refuses keeps the report pending, visible in
//! `state pending`, retried on the destination's own back-off, and `state retry` sends it at
//! once, as for any alert.

use chrono::DateTime;

use super::period::{date_of, Period};
use super::plan::ReportError;
use super::ReportSpec;
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;

/// Most missed periods one run catches up on (the latest ones).
const MAX_CATCH_UP: usize = 31;

/// The next time any report's schedule fires after `now`.
pub(crate) fn next_fire(pipeline: &Pipeline, now: i64) -> Option<i64> {
    let now = DateTime::from_timestamp(now, 0)?;
    pipeline
        .config()
        .reports
        .iter()
        .filter_map(|spec| spec.schedule.next_after(now))
        .map(|t| t.timestamp())
        .min()
}

/// Queues the reports that are due at `now`; returns how many periods were queued. Logs
/// what fails (tried again after the next poll).
pub(crate) async fn run_due(pipeline: &Pipeline, now: i64, shutdown: &Shutdown) -> usize {
    let overlap = i64::try_from(pipeline.config().weiban.overlap.as_secs()).unwrap_or(0);
    let mut queued = 0;
    for spec in &pipeline.config().reports {
        if shutdown.is_shutdown() {
            break;
        }
        match run_if_due(pipeline, spec, now, overlap, shutdown).await {
            Ok(periods) => queued += periods,
            Err(e) => tracing::error!(
                "{}; tried again after the next poll",
                crate::logging::redact(&e.to_string())
            ),
        }
    }
    queued
}

/// When `period` may be sent: the first fire at or after its end, once `overlap` seconds have
/// passed since that end. A crontab with no fire left sends at the end plus `overlap`.
pub(crate) fn send_time(spec: &ReportSpec, period: &Period, overlap: i64) -> i64 {
    let end = period.window(spec.schedule.timezone()).end + 1;
    let settled = end.saturating_add(overlap);
    DateTime::from_timestamp(end - 1, 0)
        .and_then(|t| spec.schedule.next_after(t))
        .map_or(settled, |fire| fire.timestamp().max(settled))
}

/// The whole periods in the report's scope whose send time is at or before `now`, oldest
/// first, the latest [`MAX_CATCH_UP`] at most. Whether each was produced is the caller's to
/// check.
///
/// In scope are the periods that ended after `since`, and the one that the crontab's first
/// fire after `since` reports (the last whole period before that fire): a daily report added
/// at 03:00 with a 09:00 crontab sends yesterday's figures at 09:00, as an operator expects.
pub(crate) fn due_periods(spec: &ReportSpec, since: i64, now: i64, overlap: i64) -> Vec<Period> {
    let tz = spec.schedule.timezone();
    let first = DateTime::from_timestamp(since, 0)
        .and_then(|t| spec.schedule.next_after(t))
        .map(|fire| Period::last_whole(spec.period, date_of(fire.timestamp(), tz)));
    // The latest whole period is the one before today's; earlier ones step back from it.
    let mut period = Period::last_whole(spec.period, date_of(now, tz));
    let mut due = Vec::new();
    while due.len() < MAX_CATCH_UP && (period.window(tz).end >= since || Some(period) == first) {
        // A period not over yet (a clock stepped back) is not whole.
        if period.window(tz).end < now && send_time(spec, &period, overlap) <= now {
            due.push(period);
        }
        let previous = period.previous();
        if previous == period {
            break;
        }
        period = previous;
    }
    due.reverse();
    due
}

/// Queues each due period of `spec` not produced yet; returns how many.
async fn run_if_due(
    pipeline: &Pipeline,
    spec: &ReportSpec,
    now: i64,
    overlap: i64,
    shutdown: &Shutdown,
) -> Result<usize, ReportError> {
    let store = pipeline.store();
    let Some(since) = store.report_since(&spec.name, spec.period)? else {
        store.set_report_since(&spec.name, spec.period, now).await?;
        return Ok(0);
    };
    let mut queued = 0;
    for period in due_periods(spec, since, now, overlap) {
        if shutdown.is_shutdown() || store.report_produced(&spec.name, &period.key())? {
            continue;
        }
        tracing::info!(report = %spec.name, period = %period.key(), "running report");
        super::send::run(pipeline, spec, period, now, None, false, shutdown).await?;
        queued += 1;
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;

    fn spec(cron: &str, period: crate::config::PeriodKind) -> ReportSpec {
        ReportSpec {
            name: "r".into(),
            cron: cron.into(),
            schedule: Schedule::parse(cron, "Asia/Shanghai").unwrap(),
            period,
            route: "managers".into(),
            top: 10,
        }
    }

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp()
    }

    fn keys(periods: &[Period]) -> Vec<String> {
        periods.iter().map(Period::key).collect()
    }

    const OVERLAP: i64 = 15 * 60;

    #[test]
    fn downtime_catches_up_every_missed_period_once() {
        let daily = spec("0 0 9 * * *", crate::config::PeriodKind::Day);
        // First seen Sunday noon; down from Monday 08:00 to Wednesday 10:00.
        let due = due_periods(
            &daily,
            at("2026-11-22T12:00:00+08:00"),
            at("2026-11-25T10:00:00+08:00"),
            OVERLAP,
        );
        assert_eq!(
            keys(&due),
            [
                "2026-11-22..2026-11-22",
                "2026-11-23..2026-11-23",
                "2026-11-24..2026-11-24"
            ]
        );
    }

    #[test]
    fn a_period_waits_for_its_fire_and_for_the_overlap() {
        // A crontab firing at midnight: the day is fetched only once the overlap has passed.
        let midnight = spec("0 0 0 * * *", crate::config::PeriodKind::Day);
        let since = at("2026-11-20T12:00:00+08:00");
        let before = due_periods(&midnight, since, at("2026-11-25T00:10:00+08:00"), OVERLAP);
        assert_eq!(
            keys(&before).last().map(String::as_str),
            Some("2026-11-23..2026-11-23")
        );
        let after = due_periods(&midnight, since, at("2026-11-25T00:15:00+08:00"), OVERLAP);
        assert_eq!(
            keys(&after).last().map(String::as_str),
            Some("2026-11-24..2026-11-24")
        );
        // A crontab at 09:00: not before the fire.
        let nine = spec("0 0 9 * * *", crate::config::PeriodKind::Day);
        let early = due_periods(&nine, since, at("2026-11-25T08:59:59+08:00"), OVERLAP);
        assert_eq!(
            keys(&early).last().map(String::as_str),
            Some("2026-11-23..2026-11-23")
        );
    }

    #[test]
    fn moving_the_crontab_or_the_clock_never_skips_a_period() {
        let since = at("2026-11-20T12:00:00+08:00");
        let now = at("2026-11-25T08:30:00+08:00");
        // Tuesday was due at 09:00 but the daemon was down; the crontab is now 08:00: still due.
        let moved = spec("0 0 8 * * *", crate::config::PeriodKind::Day);
        assert!(keys(&due_periods(&moved, since, now, OVERLAP))
            .contains(&"2026-11-24..2026-11-24".to_owned()));
        // The clock steps back a day: what was due then is due still (the store says what
        // was produced), nothing newer appears.
        let daily = spec("0 0 9 * * *", crate::config::PeriodKind::Day);
        let back = due_periods(&daily, since, at("2026-11-24T10:00:00+08:00"), OVERLAP);
        assert_eq!(
            keys(&back).last().map(String::as_str),
            Some("2026-11-23..2026-11-23")
        );
        // A crontab firing every two seconds: one weekly period, not thirty.
        let often = spec("*/2 * * * * *", crate::config::PeriodKind::Week);
        let monday = at("2026-11-23T12:00:00+08:00");
        let due = due_periods(&often, monday, at("2026-11-25T10:01:00+08:00"), OVERLAP);
        assert_eq!(keys(&due), ["2026-11-16..2026-11-22"]);
    }

    #[test]
    fn a_daylight_saving_gap_that_swallows_the_fire_still_sends_the_period() {
        // 2026-03-08 02:30 does not exist in New York: the crontab's fire that day is skipped.
        let gap = ReportSpec {
            schedule: Schedule::parse("0 30 2 * * *", "America/New_York").unwrap(),
            ..spec("0 30 2 * * *", crate::config::PeriodKind::Day)
        };
        let since = DateTime::parse_from_rfc3339("2026-03-01T12:00:00-05:00")
            .unwrap()
            .timestamp();
        let now = DateTime::parse_from_rfc3339("2026-03-09T03:00:00-04:00")
            .unwrap()
            .timestamp();
        let due = keys(&due_periods(&gap, since, now, OVERLAP));
        assert!(
            due.contains(&"2026-03-07..2026-03-07".to_owned()),
            "{due:?}"
        );
        assert!(
            due.contains(&"2026-03-08..2026-03-08".to_owned()),
            "{due:?}"
        );
    }

    #[test]
    fn a_report_first_seen_sends_nothing_older_and_at_most_the_catch_up() {
        let daily = spec("0 0 9 * * *", crate::config::PeriodKind::Day);
        let now = at("2026-11-25T10:00:00+08:00");
        assert!(due_periods(&daily, now, now, OVERLAP).is_empty());
        // Added at 03:00: the 09:00 fire sends yesterday's, as the crontab's first fire would.
        let early = at("2026-11-25T03:00:00+08:00");
        assert!(due_periods(&daily, early, at("2026-11-25T08:59:00+08:00"), OVERLAP).is_empty());
        assert_eq!(
            keys(&due_periods(
                &daily,
                early,
                at("2026-11-25T09:00:00+08:00"),
                OVERLAP
            )),
            ["2026-11-24..2026-11-24"]
        );
        let long_ago = at("2025-01-01T00:00:00+08:00");
        let due = due_periods(&daily, long_ago, now, OVERLAP);
        assert_eq!(due.len(), MAX_CATCH_UP);
        assert_eq!(
            keys(&due).last().map(String::as_str),
            Some("2026-11-24..2026-11-24")
        );
    }
}
