//! `churn-alert once`: one cycle, exit status says whether everything due was delivered.
//!
//! Exit status: 0 when everything due was delivered, 75 when the rest is held for quiet hours
//! (nothing failed), 1 when polling failed or a destination did not accept its messages.
//!
//! Reports whose crontab fired since the last run are sent after the cycle, so a system timer
//! that runs `once` gets them too.
//!
//! With `--dry-run` it prints what the cycle would send (what is pending plus what the next
//! window holds that is not remembered yet) and changes nothing.

use std::process::ExitCode;

use crate::cli::OnceArgs;
use crate::logging::redact;
use crate::shutdown::Shutdown;
use crate::time::unix_now;

/// Exit status when everything went well but deliveries wait for quiet hours to end
/// (`EX_TEMPFAIL`: try again later).
const HELD: u8 = 75;

pub(crate) async fn once(args: &OnceArgs, shutdown: Shutdown) -> anyhow::Result<ExitCode> {
    let pipeline = super::open_pipeline(&args.config, args.dry_run)?;
    if args.dry_run {
        let plan = pipeline.plan(unix_now()).await?;
        let losses: usize = plan.values().map(Vec::len).sum();
        crate::cmd::console::show!(
            "dry run: {losses} deliveries would be made; nothing is sent, nothing is changed\n"
        );
        if plan.is_empty() {
            crate::cmd::console::show!("nothing new to send");
        }
        // Described with the org chart the plan was routed with: department robots included.
        let routing = pipeline.routing();
        let router = routing.router();
        super::preview::print_plan(pipeline.renderer(), pipeline.sinks(), &router, plan);
        // Reports and alerts already queued go out in the same pass.
        for (id, _) in pipeline.store().prepared_counts()? {
            let described = router.get(&id).map_or_else(
                || format!("{id} (no longer in the config)"),
                |d| d.describe(),
            );
            for (_, message) in pipeline.store().prepared_for(&id)? {
                crate::cmd::console::show!(
                    "══ {} ══ also waiting: {} ({})",
                    crate::render::escape::terminal(&described),
                    crate::render::escape::terminal(&message.what),
                    message.label
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut report = pipeline.cycle(&shutdown).await?;
    if crate::report::after_poll(&pipeline, unix_now(), &shutdown).await {
        // Reports and alerts just queued go out through the same stages, in this run.
        let sent = pipeline.deliver(unix_now(), &shutdown).await?;
        report.delivery.messages_sent += sent.messages_sent;
        report.delivery.waiting = sent.waiting;
        report.delivery.refusing = sent.refusing;
        report.delivery.held = sent.held;
        report.pending = pipeline.store().pending_counts()?.values().sum();
    }
    pipeline.store().flush().await?;
    if report.delivery.held > 0 {
        crate::cmd::console::say!(
            "churn-alert: {} deliveries are held for quiet hours and go out when they end",
            report.delivery.held
        );
    }
    if report.is_clean() && report.delivery.held > 0 {
        return Ok(ExitCode::from(HELD));
    }
    if report.is_clean() {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(error) = &report.poll_error {
        crate::cmd::console::say!("churn-alert: polling failed: {}", redact(error));
    }
    super::print_waiting(&report.delivery.waiting);
    crate::cmd::console::say!(
        "churn-alert: {} deliveries stay pending and are retried by the next run",
        report.pending
    );
    Ok(ExitCode::FAILURE)
}
