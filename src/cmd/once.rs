//! `churn-alert once`: one cycle, exit status says whether everything due was delivered.

use std::process::ExitCode;

use crate::cli::ConfigArg;
use crate::shutdown::Shutdown;

pub(crate) async fn once(args: &ConfigArg) -> anyhow::Result<ExitCode> {
    let pipeline = super::open(&args.config)?;
    let report = pipeline.cycle(&Shutdown::on_signals()).await?;
    pipeline.store().flush().await?;
    if report.is_clean() {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(error) = &report.poll_error {
        eprintln!("churn-alert: polling failed: {error}");
    }
    for (destination, reason) in &report.delivery.waiting {
        eprintln!("churn-alert: not delivered to {destination}: {reason}");
    }
    eprintln!(
        "churn-alert: {} deliveries stay pending and are retried by the next run",
        report.pending
    );
    Ok(ExitCode::FAILURE)
}
