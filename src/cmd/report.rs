//! `churn-alert report`: a report for the last whole period (or `--period`), now.
//!
//! While the daemon runs (it holds the store), the command asks the daemon to do it, over the
//! unix socket beside the store (`POST /report`), and prints what the daemon did.
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
use crate::server::state::{ReportAnswer, ReportAsk};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};
use crate::time::unix_now;

pub(crate) async fn report(args: &ReportArgs, shutdown: Shutdown) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config)?;
    let store = if args.dry_run {
        Store::temporary()?
    } else {
        match Store::open(&config.store.path) {
            Ok(store) => store.corp(&config.corp)?,
            Err(StoreError::Locked { .. }) => return through_daemon(args, &config).await,
            Err(e) => return Err(e.into()),
        }
    };
    let pipeline = Pipeline::new(config, store)
        .with_context(|| format!("config {} cannot be used", args.config.config.display()))?;
    if args.dry_run {
        return dry_run(&pipeline, args, &shutdown).await;
    }
    let ask = ReportAsk {
        name: args.name.clone(),
        period: args.period.clone(),
        corp: Some(pipeline.config().corp.to_string()),
    };
    let answer = produce(&pipeline, &ask, args.out.as_deref(), &shutdown).await?;
    Ok(print(&answer))
}

/// The report, produced and sent now on `pipeline`: by this command when it holds the store,
/// by the daemon's loop when the daemon does (`POST /report` on its socket).
pub(crate) async fn produce(
    pipeline: &Pipeline,
    ask: &ReportAsk,
    out: Option<&std::path::Path>,
    shutdown: &Shutdown,
) -> anyhow::Result<ReportAnswer> {
    let config = pipeline.config();
    let spec = spec_of(config, &ask.name)?;
    let now = unix_now();
    let period = period_of(
        ask.period.as_deref(),
        spec,
        send::today(config.timezone(), now),
        false,
    )?;
    let overlap = i64::try_from(config.weiban.overlap.as_secs()).unwrap_or(0);
    let settled = period.window(config.timezone()).end + 1 + overlap;
    if settled > now {
        // Weiban records a loss late: produced now, the period would miss it for good.
        anyhow::bail!(
            "--period {} ended less than `weiban.overlap` ({}s) ago; late records would be missed: try again in {}s, or use --dry-run",
            period.key(),
            overlap,
            settled - now
        );
    }
    let run = send::run(pipeline, spec, period, now, out, false, shutdown).await?;
    let mut lines: Vec<String> = run
        .written
        .iter()
        .map(|path| format!("wrote {}", terminal(path)))
        .collect();
    if run.delivered.is_empty() {
        anyhow::bail!(
            "report `{}` {} is held: its route routes by department and the org chart was never read (`churn-alert staff` reads it; see the log); nothing was queued",
            spec.name,
            period.key()
        );
    }
    let mut failed = false;
    for (id, sent) in send::send_now(pipeline, &run, now, shutdown).await? {
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
        lines.push(format!(
            "report `{}` {} → {}: {}",
            spec.name,
            period.key(),
            id,
            terminal(&line)
        ));
    }
    pipeline.store().flush().await?;
    Ok(ReportAnswer { lines, failed })
}

/// `--dry-run`: rendered on a temporary store, nothing sent.
async fn dry_run(
    pipeline: &Pipeline,
    args: &ReportArgs,
    shutdown: &Shutdown,
) -> anyhow::Result<ExitCode> {
    let config = pipeline.config();
    let spec = spec_of(config, &args.name)?;
    let now = unix_now();
    let today = send::today(config.timezone(), now);
    let period = period_of(args.period.as_deref(), spec, today, true)?;
    crate::cmd::console::show!(
        "report `{}` for {} (dry run: nothing is sent)\n",
        spec.name,
        period.key()
    );
    let out = args.out.as_deref();
    let run = send::run(pipeline, spec, period, now, out, true, shutdown).await?;
    for path in &run.written {
        crate::cmd::console::show!("wrote {}", terminal(path));
    }
    Ok(ExitCode::SUCCESS)
}

/// The report named `name`, or an error listing the config's reports.
fn spec_of<'c>(
    config: &'c crate::config::Config,
    name: &str,
) -> anyhow::Result<&'c crate::report::ReportSpec> {
    config.report(name).ok_or_else(|| {
        let names: Vec<&str> = config.reports.iter().map(|r| r.name.as_str()).collect();
        anyhow::anyhow!(
            "no report named `{name}` in the config; reports: {}",
            if names.is_empty() {
                "(none: add a [[report]] section)".to_owned()
            } else {
                names.join(", ")
            }
        )
    })
}

/// Prints what was done; exit 1 when a destination did not take the report.
fn print(answer: &ReportAnswer) -> ExitCode {
    for line in &answer.lines {
        crate::cmd::console::show!("{line}");
    }
    if answer.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The daemon holds the store: it produces and sends the report in its own loop, asked over
/// the unix socket beside the store (`--out` is this command's own folder, so not there).
async fn through_daemon(
    args: &ReportArgs,
    config: &crate::config::Config,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.out.is_none(),
        "the daemon holds the store and sends the report itself: --out cannot write from there; use --dry-run --out DIR to see the files"
    );
    let socket = crate::server::state::socket_path(&config.store.path);
    let shown = format!("the daemon's socket {}", socket.display());
    anyhow::ensure!(
        socket.exists(),
        "the store at {} is in use by the running daemon, and {shown} is missing (see its log); restart the daemon, or stop it to send the report from here",
        config.store.path.display()
    );
    // Long enough for a report of many parts at a robot's 20 messages a minute.
    let client = crate::http::builder(std::time::Duration::from_secs(600))
        .unix_socket(socket.as_path())
        .build()?;
    let ask = ReportAsk {
        name: args.name.clone(),
        period: args.period.clone(),
        corp: Some(config.corp.to_string()),
    };
    let answer = client
        .post("http://localhost/report")
        .json(&ask)
        .send()
        .await
        .with_context(|| format!("the store is in use and {shown} does not answer"))?;
    let status = answer.status();
    let body = answer.text().await.with_context(|| {
        format!("{shown} broke off its answer; `churn-alert state pending` shows whether the report waits")
    })?;
    anyhow::ensure!(
        status.is_success(),
        "the daemon did not send the report: {}",
        body.trim()
    );
    crate::cmd::console::show!("(sent by the running daemon)");
    let answer: ReportAnswer =
        serde_json::from_str(&body).with_context(|| format!("{shown} answered something else"))?;
    Ok(print(&answer))
}

/// `--period`, or the last whole period; a period not over yet only for `--dry-run`.
fn period_of(
    period: Option<&str>,
    spec: &crate::report::ReportSpec,
    today: chrono::NaiveDate,
    dry_run: bool,
) -> anyhow::Result<Period> {
    let period = match period {
        Some(text) => Period::parse(text).map_err(|e| anyhow::anyhow!("--period: {e}"))?,
        None => Period::last_whole(spec.period, today),
    };
    if period.last >= today && !dry_run {
        // Sent now, the period would be recorded as sent with part of its losses.
        anyhow::bail!(
            "--period {} is not over yet (today is {today}); only whole periods are sent, --dry-run shows it so far",
            period.key()
        );
    }
    Ok(period)
}
