//! `churn-alert report`: a report for the last whole period (or `--period`), now.
//!
//! Queues the period like a scheduled report (once: a period produced before is not queued
//! again) and delivers it at once through the outbox's stages, trying its destinations now
//! even if they wait on a back-off; what a destination refuses stays pending and is retried. `--dry-run` renders without sending and without
//! opening the store (it works while the daemon runs); `--out DIR` also writes the markdown,
//! HTML, PNG and XLSX of each destination into `DIR`.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::ReportArgs;
use crate::pipeline::Pipeline;
use crate::render::escape::terminal;
use crate::report::send::{self, Sent};
use crate::report::Period;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::time::unix_now;

pub(crate) async fn report(args: &ReportArgs, shutdown: Shutdown) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config.config)?;
    let store = if args.dry_run {
        Store::temporary()?
    } else {
        Store::open(&config.store.path)?
    };
    let names: Vec<String> = config.reports.iter().map(|r| r.name.clone()).collect();
    let pipeline = Pipeline::new(config, store)
        .with_context(|| format!("config {} cannot be used", args.config.config.display()))?;
    let config = pipeline.config();
    let Some(spec) = config.report(&args.name) else {
        anyhow::bail!(
            "no report named `{}` in the config; reports: {}",
            args.name,
            if names.is_empty() {
                "(none: add a [[report]] section)".to_owned()
            } else {
                names.join(", ")
            }
        );
    };
    let now = unix_now();
    let period = period_of(args, spec, send::today(config.timezone(), now))?;
    let overlap = i64::try_from(config.weiban.overlap.as_secs()).unwrap_or(0);
    let settled = period.window(config.timezone()).end + 1 + overlap;
    if settled > now && !args.dry_run {
        // Weiban records a loss late: produced now, the period would miss it for good.
        anyhow::bail!(
            "--period {} ended less than `weiban.overlap` ({}s) ago; late records would be missed: try again in {}s, or use --dry-run",
            period.key(),
            overlap,
            settled - now
        );
    }
    if args.dry_run {
        crate::cmd::console::show!(
            "report `{}` for {} (dry run: nothing is sent)\n",
            spec.name,
            period.key()
        );
    }
    let out = args.out.as_deref();
    let run = send::run(&pipeline, spec, period, now, out, args.dry_run, &shutdown).await?;
    for path in &run.written {
        crate::cmd::console::show!("wrote {}", terminal(path));
    }
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if run.delivered.is_empty() {
        anyhow::bail!(
            "report `{}` {} is held: its route routes by department and the org chart was never read (`churn-alert staff` reads it; see the log); nothing was queued",
            spec.name,
            period.key()
        );
    }
    let mut failed = false;
    for (id, sent) in send::send_now(&pipeline, &run, now, &shutdown).await? {
        let line = match sent {
            Sent::Delivered { messages } => format!("sent ({messages} message(s))"),
            Sent::AlreadyDelivered => "already sent for this period; not sent again".into(),
            Sent::Waiting(reason) => {
                failed = true;
                format!(
                    "not delivered: {}; it stays pending (`churn-alert state pending`) and is retried",
                    crate::logging::redact(&reason)
                )
            }
            Sent::Unsendable(reason) => {
                failed = true;
                format!("cannot be sent: {}", crate::logging::redact(&reason))
            }
        };
        crate::cmd::console::show!(
            "report `{}` {} → {}: {}",
            spec.name,
            period.key(),
            id,
            terminal(&line)
        );
    }
    pipeline.store().flush().await?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `--period`, or the last whole period; a period not over yet only for `--dry-run`.
fn period_of(
    args: &ReportArgs,
    spec: &crate::report::ReportSpec,
    today: chrono::NaiveDate,
) -> anyhow::Result<Period> {
    let period = match &args.period {
        Some(text) => Period::parse(text).map_err(|e| anyhow::anyhow!("--period: {e}"))?,
        None => Period::last_whole(spec.period, today),
    };
    if period.last >= today && !args.dry_run {
        // Sent now, the period would be recorded as sent with part of its losses.
        anyhow::bail!(
            "--period {} is not over yet (today is {today}); only whole periods are sent, --dry-run shows it so far",
            period.key()
        );
    }
    Ok(period)
}
