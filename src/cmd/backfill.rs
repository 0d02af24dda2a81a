//! `churn-alert backfill`: walk the past in windows, within Weiban's limits.
//!
//! Each window is fetched and recorded like a poll (so a crash loses nothing and a rerun
//! repeats nothing). With `--mark-only` losses are only remembered, so that going live does
//! not flood the group with history; otherwise they are delivered at the end, paced like any
//! delivery. Progress shows as a bar on a terminal and as plain lines otherwise.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, TimeZone};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::BackfillArgs;
use crate::pipeline::{Pipeline, Recording};
use crate::shutdown::Shutdown;
use crate::source::Window;
use crate::time::unix_now;

pub(crate) async fn backfill(args: &BackfillArgs, shutdown: Shutdown) -> anyhow::Result<ExitCode> {
    let pipeline = super::open(&args.config)?;
    let tz = pipeline.config().timezone();
    let since = parse_since(&args.since, tz)?;
    let now = unix_now();
    let cutoff = pipeline.cutoff(now);
    if since < cutoff {
        tracing::warn!(
            "--since reaches past store.retention: losses before {} are skipped, as they would be forgotten at once",
            crate::time::rfc3339(tz, cutoff)
        );
    }
    let step = i64::try_from(args.window.as_secs())
        .unwrap_or(86_400)
        .max(60);
    // Marking only must not silence what the live window has not fetched yet: it stops where
    // the daemon's polling took over, and leaves the rest to be reported by the next poll.
    let live_end = pipeline.store().last_window_end()?;
    let until = match live_end {
        Some(end) if args.mark_only => end.min(now),
        _ => now,
    };
    let windows: Vec<Window> = (since.max(cutoff)..until)
        .step_by(step as usize)
        .map(|start| Window {
            start,
            end: (start + step - 1).min(until),
        })
        .collect();
    let how = if args.mark_only {
        Recording::MarkOnly
    } else {
        Recording::PerInterval
    };
    let (fetched, new) = record_all(&pipeline, &windows, now, how, &shutdown).await?;
    if !(args.mark_only && live_end.is_some()) {
        move_live_window(&pipeline, since.max(cutoff), now).await?;
    }
    let verb = if args.mark_only {
        "remembered (not reported)"
    } else {
        "queued"
    };
    crate::cmd::console::show!(
        "backfill: {} window(s), {fetched} losses found, {new} new {verb}",
        windows.len()
    );
    if args.mark_only {
        return Ok(ExitCode::SUCCESS);
    }
    let report = pipeline.deliver(unix_now(), &shutdown).await?;
    crate::cmd::console::show!(
        "backfill: {} message(s) sent for {} loss(es)",
        report.messages_sent,
        report.losses_delivered
    );
    super::print_waiting(&report.waiting);
    Ok(if report.all_delivered() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Fetches and records every window, showing progress; returns (fetched, new).
async fn record_all(
    pipeline: &Pipeline,
    windows: &[Window],
    now: i64,
    how: Recording,
    shutdown: &Shutdown,
) -> anyhow::Result<(u64, usize)> {
    let tz = pipeline.config().timezone();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(windows.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} windows · {msg} · {eta} left")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let (mut fetched, mut new) = (0, 0);
    for (i, window) in windows.iter().enumerate() {
        if shutdown.is_shutdown() {
            anyhow::bail!("interrupted; rerun the same command to continue (nothing is repeated)");
        }
        let (f, n) = pipeline
            .record_window(*window, now, how)
            .await
            .with_context(|| {
                format!(
                    "window {} of {} failed; rerun to continue",
                    i + 1,
                    windows.len()
                )
            })?;
        fetched += f;
        new += n;
        let day = crate::time::local(tz, window.start)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        match &bar {
            Some(bar) => {
                bar.set_message(format!("{day} · {new} new of {fetched} found"));
                bar.inc(1);
            }
            None => {
                tracing::info!(window = i + 1, of = windows.len(), from = %day, fetched = f, new = n, "backfill window done")
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    Ok((fetched, new))
}

/// Moves the live window to `now` only over time that was fetched: when the backfill began
/// (at `from`) after the live window's end, the gap between them is still the next poll's.
async fn move_live_window(pipeline: &Pipeline, from: i64, now: i64) -> anyhow::Result<()> {
    let store = pipeline.store();
    match store.last_window_end()? {
        None => store.advance_window(now).await?,
        Some(end) if end < now && from <= end => store.advance_window(now).await?,
        Some(end) if end < now => {
            let shown = |t: i64| crate::time::rfc3339(pipeline.config().timezone(), t);
            crate::cmd::console::say!(
                "churn-alert: the live window still ends at {}: the next poll fetches from there, so the gap up to {} is not skipped",
                shown(end),
                shown(from)
            );
        }
        Some(_) => {}
    }
    Ok(())
}

/// A date (midnight in `tz`) or an RFC 3339 time, as unix seconds.
fn parse_since(text: &str, tz: crate::zone::Zone) -> anyhow::Result<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").with_context(|| {
        format!("--since `{text}` is neither a date like 2025-01-01 nor an RFC 3339 time")
    })?;
    let midnight = date.and_hms_opt(0, 0, 0).context("midnight")?;
    tz.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.timestamp())
        .with_context(|| format!("--since `{text}` does not exist in {tz}"))
}
