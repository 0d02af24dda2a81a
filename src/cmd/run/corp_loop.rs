//! One corp's loop: cycles on its schedule until its shutdown.
//!
//! Cycles run one at a time in this loop, so they can never overlap: a cycle that overruns
//! its next run makes the loop skip the runs it missed (with a log line) and wait for the
//! next one. Between scheduled runs, a destination waiting to retry (a blocked robot) or
//! deliveries held for quiet hours get a delivery-only pass at their time instead of waiting
//! for the next scheduled cycle.
//!
//! Reports (`[[report]]`) run when their own crontab fires, and after each cycle when one is
//! due again ([`crate::report::due`]). `churn-alert report` run beside the daemon is handed
//! to this loop over the state socket and done between two cycles.
//!
//! On shutdown the current cycle gets a few seconds to abandon its in-flight send (it stays
//! pending). Each corp has its own loop, so one corp's hanging Weiban or refusing robots
//! never delay another's cycle.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::pipeline::Pipeline;
use crate::server::state::ReportRequest;
use crate::server::Health;
use crate::shutdown::Shutdown;
use crate::time::unix_now;

/// How long a cycle may take to wind down after a shutdown signal before it is dropped.
pub(super) const WIND_DOWN: Duration = Duration::from_secs(5);

/// One corp's loop: its pipeline (swapped on SIGHUP), its health, its inbox for
/// `churn-alert report`, and its own shutdown, pulled when the process stops or when SIGHUP
/// removes the corp.
pub(super) struct CorpLoop {
    pub pipeline: Pipeline,
    pub health: Arc<Health>,
    /// New pipelines of this corp after a SIGHUP.
    pub reloads: tokio::sync::mpsc::Receiver<Pipeline>,
    pub reports: tokio::sync::mpsc::Receiver<ReportRequest>,
    pub shutdown: Shutdown,
}

impl CorpLoop {
    /// Cycles on this corp's schedule until its shutdown; run in the corp's scope
    /// ([`crate::server::corp_label::scope`]), so that its metrics and log lines name it.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            mut pipeline,
            health,
            mut reloads,
            reports: mut report_requests,
            mut shutdown,
        } = self;
        health.set_max_age(healthy_poll_age(&pipeline));
        health.export_gauges();
        crate::server::announce_series(pipeline.config());
        let config = pipeline.config();
        tracing::info!(cron = %config.schedule.cron, timezone = %config.timezone(), "serving this corp");

        // Resume what a previous process left pending before waiting for the first run.
        let mut retry_at = delivery_pass(&pipeline, &shutdown, &health).await;
        while !shutdown.is_shutdown() {
            let config = pipeline.config();
            let schedule = config.schedule();
            let Some(wake) = Wake::next(&pipeline, retry_at) else {
                anyhow::bail!("schedule `{}` has no future run", config.schedule.cron);
            };
            tracing::debug!(next_run = %wake.tick.with_timezone(&schedule.timezone()).to_rfc3339(), "waiting");
            tokio::select! {
                () = tokio::time::sleep(wake.sleep) => {}
                () = shutdown.recv() => break,
                Some(fresh) = reloads.recv() => {
                    pipeline = fresh;
                    health.set_max_age(healthy_poll_age(&pipeline));
                    crate::server::announce_series(pipeline.config());
                    // A destination whose address changed since it failed is tried at once.
                    retry_at = delivery_pass(&pipeline, &shutdown, &health).await;
                    continue;
                }
                Some(request) = report_requests.recv() => {
                    asked_report(&pipeline, request, &shutdown).await;
                    // A refused part is retried at its time; a cycle that came due meanwhile
                    // runs now (below), never skipped.
                    retry_at = delivery_pass(&pipeline, &shutdown, &health).await;
                }
            }
            let now = crate::time::now_utc();
            if wake.report_at.is_some_and(|at| now >= at) && reports(&pipeline, &shutdown).await {
                retry_at = delivery_pass(&pipeline, &shutdown, &health).await;
            }
            if crate::time::now_utc() < wake.tick {
                if wake.retry.is_some_and(|at| crate::time::now_utc() >= at) {
                    retry_at = delivery_pass(&pipeline, &shutdown, &health).await;
                }
                continue;
            }
            retry_at = cycle(&pipeline, &mut shutdown, &health).await;
            if reports(&pipeline, &shutdown).await {
                retry_at = delivery_pass(&pipeline, &shutdown, &health).await;
            }
            let missed = schedule
                .upcoming(wake.tick, 1000)
                .into_iter()
                .take_while(|t| *t <= crate::time::now_utc())
                .count();
            if missed > 0 {
                tracing::warn!(
                    missed,
                    "the cycle overran {missed} scheduled run(s); they were skipped, not queued"
                );
            }
        }
        Ok(())
    }
}

/// `churn-alert report`, asked over the socket: produced and sent as the command would,
/// on this loop's pipeline (a report's parts then wait in the outbox like any delivery).
async fn asked_report(pipeline: &Pipeline, request: ReportRequest, shutdown: &Shutdown) {
    let ReportRequest { ask, reply } = request;
    tracing::info!(report = %ask.name, "`churn-alert report` asked the daemon for a report");
    let mut signal = shutdown.clone();
    let run = crate::cmd::report::produce(pipeline, &ask, None, shutdown);
    tokio::pin!(run);
    let stopped =
        || Err("the daemon is stopping; what was queued is sent after it restarts".to_owned());
    let answer = tokio::select! {
        answer = &mut run => answer.map_err(|e| format!("{e:#}")),
        () = signal.recv() => match tokio::time::timeout(WIND_DOWN, &mut run).await {
            Ok(answer) => answer.map_err(|e| format!("{e:#}")),
            Err(_) => stopped(),
        },
    };
    if let Err(reason) = &answer {
        tracing::warn!(report = %ask.name, "the asked report was not produced: {}", crate::logging::redact(reason));
    }
    // The asker may have given up waiting; the report is queued either way.
    let _ = reply.send(answer);
}

/// When the loop wakes next: the schedule's next run, or earlier for a retry or a report.
struct Wake {
    tick: DateTime<Utc>,
    retry: Option<DateTime<Utc>>,
    report_at: Option<DateTime<Utc>>,
    sleep: Duration,
}

impl Wake {
    fn next(pipeline: &Pipeline, retry_at: Option<i64>) -> Option<Self> {
        let now = crate::time::now_utc();
        let tick = pipeline
            .config()
            .schedule()
            .next_after(now)?
            .with_timezone(&Utc);
        let retry = retry_at.and_then(|at| DateTime::<Utc>::from_timestamp(at, 0));
        let report_at = crate::report::due::next_fire(pipeline, now.timestamp())
            .and_then(|at| DateTime::<Utc>::from_timestamp(at, 0));
        let wake = [retry, report_at]
            .into_iter()
            .flatten()
            .filter(|at| *at < tick)
            .min()
            .unwrap_or(tick);
        // A retry time already past (a clock step, a long pass) must not make the loop spin;
        // long sleeps are cut so that a wall-clock jump is noticed within a minute.
        let mut sleep = (wake - now).to_std().unwrap_or_default();
        if wake < tick {
            sleep = sleep.max(Duration::from_secs(1));
        }
        Some(Self {
            tick,
            retry,
            report_at,
            sleep: sleep.min(Duration::from_secs(60)),
        })
    }
}

/// One scheduled cycle, wound down within [`WIND_DOWN`] on shutdown; tells `/healthz` how it
/// went and returns when a waiting destination may be tried again.
async fn cycle(pipeline: &Pipeline, shutdown: &mut Shutdown, health: &Health) -> Option<i64> {
    let listener = shutdown.clone();
    let cycle = pipeline.cycle(&listener);
    tokio::pin!(cycle);
    let result = tokio::select! {
        result = &mut cycle => Some(result),
        () = shutdown.recv() => tokio::time::timeout(WIND_DOWN, &mut cycle).await.ok(),
    };
    match result {
        Some(Ok(report)) => {
            match &report.poll_error {
                None => health.poll_succeeded(unix_now()),
                Some(error) => health.poll_failed(unix_now(), error),
            }
            health.set_stranded(report.delivery.stranded);
            health.set_refusing(report.delivery.refusing.clone());
            let on_hold = &report.delivery.on_hold;
            health.set_held(on_hold.losses, on_hold.reasons.clone());
            report.delivery.next_retry_at
        }
        Some(Err(e)) => {
            tracing::error!("cycle failed: {e}; trying again at the next run");
            health.poll_failed(unix_now(), &e.to_string());
            None
        }
        None => {
            tracing::info!("abandoned the cycle for shutdown; what it had not sent stays pending");
            None
        }
    }
}

/// Queues the staff-deletion alerts and reports that are due; whether anything was queued
/// (then a delivery pass sends it). After a shutdown signal they get [`WIND_DOWN`] to finish
/// (a period not queued is queued by the next process).
async fn reports(pipeline: &Pipeline, shutdown: &Shutdown) -> bool {
    let mut signal = shutdown.clone();
    let run = crate::report::after_poll(pipeline, unix_now(), shutdown);
    tokio::pin!(run);
    tokio::select! {
        queued = &mut run => queued,
        () = signal.recv() => {
            tokio::time::timeout(WIND_DOWN, &mut run).await.unwrap_or(false)
        }
    }
}

/// Delivers what is due; returns when to look again.
async fn delivery_pass(pipeline: &Pipeline, shutdown: &Shutdown, health: &Health) -> Option<i64> {
    match pipeline.deliver(unix_now(), shutdown).await {
        Ok(report) => {
            health.set_stranded(report.stranded);
            health.set_refusing(report.refusing.clone());
            health.set_held(report.on_hold.losses, report.on_hold.reasons.clone());
            report.next_retry_at
        }
        Err(e) => {
            tracing::error!("delivering pending messages failed: {e}");
            None
        }
    }
}

/// `server.healthy_poll_age`, or twice the schedule's interval plus five minutes.
fn healthy_poll_age(pipeline: &Pipeline) -> Duration {
    let config = pipeline.config();
    if let Some(age) = config.server.as_ref().and_then(|s| s.healthy_poll_age) {
        return age;
    }
    let interval = config
        .schedule()
        .interval()
        .unwrap_or(Duration::from_secs(3600));
    interval * 2 + Duration::from_secs(300)
}
