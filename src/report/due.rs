//! When reports run inside `run` and `once`: for each time a report's crontab fired since it
//! was last looked at, and again for a period whose destination refused it.
//!
//! The store keeps, per report, the time its schedule was last handled. Each fire since then
//! stands for the last whole period before the fire (not before now: a fire handled late, after
//! an outage, still reports its own period; a daily report after three days down sends the
//! three missed days, at most [`MAX_CATCH_UP`]). The fires count as handled only when every
//! one of their periods was planned (Weiban answered), so a failed fetch is tried again after
//! the next poll. A report seen for the first time starts from now: installing the daemon does
//! not send last week's report at once (`churn-alert report` does that on demand).
//!
//! Whether a run sends anything is up to the ledger: a crontab that fires more often than the
//! period sends each period once. A destination that refused is tried again after a poll,
//! 15 minutes after the refusal at first, doubling to 6 hours, for 7 days; one that left the
//! config is not tried.

use chrono::DateTime;

use super::period::{date_of, Period};
use super::send::ReportError;
use super::ReportSpec;
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;
use crate::store::ledger::{LedgerKey, Progress};
use crate::transform::Router;

/// First wait after a refusal; it doubles with each refusal.
const RETRY_BASE: i64 = 15 * 60;
const RETRY_CAP: i64 = 6 * 3600;
/// A destination that refused a report for this long is left alone.
const GIVE_UP_AFTER: i64 = 7 * 86_400;
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

/// Runs the reports that are due at `now`; logs what fails.
pub(crate) async fn run_due(pipeline: &Pipeline, now: i64, shutdown: &Shutdown) {
    let reports = &pipeline.config().reports;
    if reports.is_empty() {
        return;
    }
    // One scan of the ledger for every report.
    let unfinished = match pipeline.store().unfinished() {
        Ok(unfinished) => unfinished,
        Err(e) => {
            tracing::error!(
                "reports: the ledger cannot be read: {e}; tried again after the next poll"
            );
            return;
        }
    };
    for spec in reports {
        if shutdown.is_shutdown() {
            return;
        }
        if let Err(e) = run_if_due(pipeline, spec, &unfinished, now, shutdown).await {
            tracing::error!(
                "{}; tried again after the next poll",
                crate::logging::redact(&e.to_string())
            );
        }
    }
}

/// The periods of the fires after `checked` up to `now`, oldest first, each once.
pub(crate) fn fired_periods(spec: &ReportSpec, checked: i64, now: i64) -> Vec<Period> {
    let tz = spec.schedule.timezone();
    let mut periods: Vec<Period> = Vec::new();
    let mut at = DateTime::from_timestamp(checked, 0);
    // Bounded: a per-second crontab after a month down would otherwise walk millions of fires.
    for _ in 0..100_000 {
        let Some(fire) = at.and_then(|t| spec.schedule.next_after(t)) else {
            break;
        };
        if fire.timestamp() > now {
            break;
        }
        let period = Period::last_whole(spec.period, date_of(fire.timestamp(), tz));
        if periods.last() != Some(&period) {
            periods.push(period);
        }
        at = Some(fire.to_utc());
    }
    let skip = periods.len().saturating_sub(MAX_CATCH_UP);
    periods.split_off(skip)
}

async fn run_if_due(
    pipeline: &Pipeline,
    spec: &ReportSpec,
    unfinished: &[(LedgerKey, Progress)],
    now: i64,
    shutdown: &Shutdown,
) -> Result<(), ReportError> {
    let store = pipeline.store();
    let Some(checked) = store.report_checked(&spec.name)? else {
        store.set_report_checked(&spec.name, now).await?;
        return Ok(());
    };
    let fired = fired_periods(spec, checked, now);
    let mut periods = fired.clone();
    let directory = pipeline.org().current();
    let router = Router::with_directory(pipeline.config(), directory.as_deref());
    for (key, progress) in unfinished {
        let wait = RETRY_BASE
            .saturating_mul(1_i64 << progress.attempts.min(10))
            .min(RETRY_CAP);
        let retry = key.report == spec.name
            && router.get(&key.destination).is_some()
            && now - progress.since <= GIVE_UP_AFTER
            && progress.at + wait <= now;
        if let (true, Ok(period)) = (retry, Period::parse(&key.period)) {
            periods.push(period);
        }
    }
    periods.sort();
    periods.dedup();
    for period in periods {
        if shutdown.is_shutdown() {
            return Ok(());
        }
        tracing::info!(report = %spec.name, period = %period.key(), "running report");
        super::send::run(pipeline, spec, period, now, None, false, shutdown).await?;
    }
    if !fired.is_empty() && !shutdown.is_shutdown() {
        store.set_report_checked(&spec.name, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;

    fn spec(cron: &str, period: super::super::PeriodKind) -> ReportSpec {
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

    #[test]
    fn a_late_fire_reports_its_own_period_and_missed_fires_are_caught_up() {
        let daily = spec("0 9 * * *", super::super::PeriodKind::Day);
        // Down from Monday 08:00 to Wednesday 10:00: Monday's and Tuesday's fires are missed.
        let periods = fired_periods(
            &daily,
            at("2026-11-23T08:00:00+08:00"),
            at("2026-11-25T10:00:00+08:00"),
        );
        let keys: Vec<String> = periods.iter().map(Period::key).collect();
        assert_eq!(
            keys,
            [
                "2026-11-22..2026-11-22",
                "2026-11-23..2026-11-23",
                "2026-11-24..2026-11-24"
            ]
        );
        let often = spec("*/2 * * * * *", super::super::PeriodKind::Week);
        let periods = fired_periods(
            &often,
            at("2026-11-25T10:00:00+08:00"),
            at("2026-11-25T10:01:00+08:00"),
        );
        assert_eq!(periods.len(), 1, "thirty fires, one period");
    }
}
