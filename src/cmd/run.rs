//! `churn-alert run`: cycles on the schedule until SIGINT or SIGTERM.
//!
//! Cycles run one at a time in this loop, so they can never overlap: a cycle that overruns
//! its next run simply makes the loop skip the runs it missed (with a log line) and wait for
//! the next one. Between scheduled runs, a destination waiting to retry (a blocked robot) gets
//! a delivery-only pass at its retry time instead of waiting for the next scheduled cycle.

use std::process::ExitCode;

use chrono::Utc;

use crate::cli::ConfigArg;
use crate::pipeline::unix_now;
use crate::shutdown::Shutdown;

pub(crate) async fn run(args: &ConfigArg) -> anyhow::Result<ExitCode> {
    let pipeline = super::open(&args.config)?;
    let config = pipeline.config();
    let schedule = config.schedule()?;
    let mut shutdown = Shutdown::on_signals();
    tracing::info!(cron = %config.schedule.cron, timezone = %config.schedule.timezone, "churn-alert running");

    // Resume what a previous process left pending before waiting for the first run.
    let mut retry_at = match pipeline.deliver(unix_now(), &shutdown).await {
        Ok(report) => report.next_retry_at,
        Err(e) => {
            tracing::error!("delivering pending messages failed: {e}");
            None
        }
    };
    loop {
        let now = Utc::now();
        let Some(tick) = schedule.next_after(now) else {
            anyhow::bail!("schedule `{}` has no future run", config.schedule.cron);
        };
        let tick = tick.with_timezone(&Utc);
        let retry = retry_at.and_then(|at| chrono::DateTime::<Utc>::from_timestamp(at, 0));
        let wake = retry.filter(|r| *r < tick).unwrap_or(tick);
        let sleep = (wake - now).to_std().unwrap_or_default();
        tracing::debug!(next_run = %tick.with_timezone(&schedule.timezone()).to_rfc3339(), "waiting");
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = shutdown.recv() => break,
        }
        if wake < tick {
            retry_at = match pipeline.deliver(unix_now(), &shutdown).await {
                Ok(report) => report.next_retry_at,
                Err(e) => {
                    tracing::error!("delivery pass failed: {e}");
                    None
                }
            };
            continue;
        }
        retry_at = match pipeline.cycle(&shutdown).await {
            Ok(report) => report.delivery.next_retry_at,
            Err(e) => {
                tracing::error!("cycle failed: {e}; trying again at the next run");
                None
            }
        };
        let missed = schedule
            .upcoming(tick, 1000)
            .into_iter()
            .take_while(|t| *t <= Utc::now())
            .count();
        if missed > 0 {
            tracing::warn!(
                missed,
                "the cycle overran its next scheduled runs; they were skipped"
            );
        }
        if shutdown.is_shutdown() {
            break;
        }
    }
    pipeline.store().flush().await?;
    tracing::info!("stopped; the store is flushed");
    Ok(ExitCode::SUCCESS)
}
