//! `churn-alert run`: cycles on the schedule until SIGINT or SIGTERM.
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
//! On SIGINT/SIGTERM the current cycle gets a few seconds to abandon its in-flight send (it
//! stays pending), then the store is flushed and the process exits 0.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cli::ConfigArg;
use crate::pipeline::Pipeline;
use crate::server::state::ReportRequest;
use crate::server::{Health, StateSource};
use crate::shutdown::Shutdown;
use crate::time::unix_now;

/// How long a cycle may take to wind down after a shutdown signal before it is dropped.
const WIND_DOWN: Duration = Duration::from_secs(5);

pub(crate) async fn run(args: &ConfigArg, shutdown: Shutdown) -> anyhow::Result<ExitCode> {
    let mut pipeline = super::open(&args.config)?;
    let mut shutdown = shutdown;
    let mut reload = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let health = Arc::new(Health::new(unix_now(), healthy_poll_age(&pipeline)));
    // `churn-alert report` while we run: handled here, between cycles, never beside one.
    let (report_inbox, mut report_requests) = tokio::sync::mpsc::channel(4);
    serve(&pipeline, &args.config, &health, &shutdown, report_inbox).await?;
    crate::server::announce_series(pipeline.config());
    let config = pipeline.config();
    tracing::info!(cron = %config.schedule.cron, timezone = %config.timezone(), "churn-alert running");

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
            _ = reload.recv() => {
                pipeline = reloaded(pipeline, &args.config);
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
    pipeline.store().flush().await?;
    tracing::info!("stopped; the store is flushed");
    Ok(ExitCode::SUCCESS)
}

/// `churn-alert report`, asked over the socket: produced and sent as the command would,
/// on this loop's pipeline (a report's parts then wait in the outbox like any delivery).
async fn asked_report(pipeline: &Pipeline, request: ReportRequest, shutdown: &Shutdown) {
    let ReportRequest { ask, reply } = request;
    tracing::info!(report = %ask.name, "`churn-alert report` asked the daemon for a report");
    let mut signal = shutdown.clone();
    let run = super::report::produce(pipeline, &ask, None, shutdown);
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

/// `/state/*` on the unix socket beside the store, and `[server]` when configured.
async fn serve(
    pipeline: &Pipeline,
    config_path: &std::path::Path,
    health: &Arc<Health>,
    shutdown: &Shutdown,
    reports: tokio::sync::mpsc::Sender<ReportRequest>,
) -> anyhow::Result<()> {
    let config = pipeline.config();
    let state = StateSource {
        config_path: config_path.to_owned(),
        store: pipeline.store().clone(),
        token: config.server.as_ref().and_then(|s| s.token.clone()),
        reports: Some(reports),
    };
    crate::server::state::serve_local(&config.store.path, state.clone(), shutdown.clone());
    if let Some(server) = &config.server {
        crate::server::serve(server.listen, Arc::clone(health), state, shutdown.clone()).await?;
    }
    Ok(())
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

/// The pipeline for the config file as it is now (SIGHUP), or the running one when the new
/// config does not load (the error is logged; nothing stops).
fn reloaded(running: Pipeline, path: &std::path::Path) -> Pipeline {
    let store = running.store().clone();
    let running_path = running.config().store.path.clone();
    let fresh = super::load_config(path).and_then(|config| {
        // The open store is this process's; another one needs a restart (and its own lock).
        anyhow::ensure!(
            config.store.path == running_path,
            "config key `store.path` changed from {} to {}; a reload cannot move the store: restart the daemon to use the new path",
            running_path.display(),
            config.store.path.display()
        );
        Pipeline::new(config, store)
    });
    match fresh {
        Ok(pipeline) => {
            tracing::info!(config = %path.display(), "SIGHUP: configuration reloaded");
            pipeline
        }
        Err(e) => {
            tracing::error!(
                "SIGHUP: {} cannot be used, keeping the running configuration: {}",
                path.display(),
                crate::logging::redact(&crate::logging::chain(&e))
            );
            running
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
