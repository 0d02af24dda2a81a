//! `churn-alert-bench`: prints the figures of BENCHMARKS.md.
//!
//! Build the product first (`cargo build --release`), then
//! `cargo run --release -p churn-alert-bench`; the `churn-alert` binary beside this one is
//! measured unless `--exe` names another.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = churn_alert_bench::BenchArgs::parse();
    let exe = args.exe.clone().or_else(|| {
        let own = std::env::current_exe().ok()?;
        Some(own.with_file_name(format!("churn-alert{}", std::env::consts::EXE_SUFFIX)))
    });
    let Some(exe) = exe else {
        eprintln!("churn-alert-bench: cannot find the churn-alert binary; pass --exe");
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("churn-alert-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    match runtime.block_on(churn_alert_bench::bench(&args, &exe, &mut out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("churn-alert-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
