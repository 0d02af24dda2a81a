//! Command-line interface: the commands and their flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;

/// Alerts sales teams when WeCom customers are lost, as Weiban (微伴助手) reports them.
#[derive(Debug, Parser)]
#[command(name = "churn-alert", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr; RUST_LOG sets the level (default: info).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one cycle (deliver what is pending, poll, deliver what is new), then exit.
    ///
    /// Exits 0 when every due message was accepted, 75 when the rest is held for quiet hours
    /// (nothing failed), 1 otherwise.
    Once(OnceArgs),
    /// Run cycles on the schedule until SIGINT or SIGTERM, for every corp of the config.
    Run(RunArgs),
    /// Validate the config, templates and schedule; print the next 5 run times.
    Check(CheckArgs),
    /// Start the built-in Weiban and robot simulators, run one real cycle, show the messages.
    Demo(DemoArgs),
    /// Walk the past in windows: report its losses, or with --mark-only just remember them.
    Backfill(BackfillArgs),
    /// Show what each destination would receive, without sending or touching the store.
    Preview(PreviewArgs),
    /// Send a report (`[[report]]`) for the last whole period now, or render it with --dry-run.
    Report(ReportArgs),
    /// Print Weiban's staff directory: userid, name, departments, status, email known.
    Staff(StaffArgs),
    /// Inspect and repair the store.
    State(StateArgs),
    /// Write the man pages and shell completions (bash, zsh, fish) into DIR, for packagers.
    #[command(hide = true)]
    GenerateDocs(GenerateDocsArgs),
}

#[derive(Debug, Args)]
pub struct GenerateDocsArgs {
    /// Where `man/` and `completions/` are written.
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this route's destinations.
    #[arg(long)]
    pub route: Option<String>,
    /// Render the losses Weiban reports now (the first-run window) instead of the sample.
    #[arg(long)]
    pub live: bool,
    /// Show this report (`[[report]]` name) for the last whole period instead of alerts:
    /// from the sample moved into the period, or with --live from Weiban.
    #[arg(long, value_name = "NAME")]
    pub report: Option<String>,
    /// Show the sample as lost by this staff member (WeCom userid), placed in the org chart
    /// the store saved: how their department robots and mailboxes would get it.
    #[arg(long, value_name = "USERID")]
    pub staff: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The report's `name` in the config.
    #[arg(long)]
    pub name: String,
    /// Another period than the last whole one: FIRST..LAST, both days included
    /// (e.g. 2026-11-16..2026-11-22).
    #[arg(long, value_name = "FIRST..LAST")]
    pub period: Option<String>,
    /// Render without sending (the store is not opened).
    #[arg(long)]
    pub dry_run: bool,
    /// Also write each destination's markdown, HTML, PNG and XLSX into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StaffArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only staff in this department or its sub-departments (name or id).
    #[arg(long, value_name = "NAME")]
    pub department: Option<String>,
    /// One JSON array, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Also talk to Weiban: fetch a token and make one outflow request.
    #[arg(long)]
    pub online: bool,
    /// Also send one short test message to every configured robot and email address (implies
    /// --online).
    #[arg(long)]
    pub send_test: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Path to the TOML config file.
    #[arg(short, long, value_name = "FILE", env = "CHURN_ALERT_CONFIG")]
    pub config: PathBuf,
    /// The corp (`[[corp]] name`) to work on; needed when the config has several.
    /// `run` and `check` take every corp without it.
    #[arg(long, value_name = "NAME")]
    pub corp: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Serve only the corps of shard I of N (counted from 0), chosen by a stable hash of each
    /// corp's name: N daemons with one config, each with its own store, serve every corp once.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::corp::Shard>,
}

#[derive(Debug, Args)]
pub struct OnceArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print what would be sent, then exit; send nothing and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Start: a date (`2025-01-01`, midnight in the schedule's zone) or an RFC 3339 time.
    #[arg(long)]
    pub since: String,
    /// Only remember the losses, report nothing (so going live does not flood the group).
    #[arg(long)]
    pub mark_only: bool,
    /// Length of each window fetched.
    #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
    pub window: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many lost customers the simulator generates.
    #[arg(long, default_value_t = 12)]
    pub losses: usize,
    /// Over how many staff members.
    #[arg(long, default_value_t = 3)]
    pub staff: usize,
    /// Also write the weekly report's markdown, HTML, PNG chart and XLSX into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, Args)]
pub struct StateOpts {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Remembered losses, pending deliveries per destination, last window, store size.
    Stats(StateOpts),
    /// What waits to be delivered, where, why and since when.
    Pending(StateOpts),
    /// Clear a permanent delivery failure (after fixing the config) so it is tried again.
    Retry {
        #[command(flatten)]
        opts: StateOpts,
        /// Only this route's destinations.
        #[arg(long)]
        route: Option<String>,
    },
    /// Discard what waits for a destination whose route was removed from the config.
    Drop {
        #[command(flatten)]
        opts: StateOpts,
        /// The destination id as `state pending` shows it, e.g. `old-route/wecom/5f0c2a9e41d7b3c8`.
        #[arg(long)]
        destination: String,
    },
    /// Write one corp's part of the store to a file, to move the corp to another shard's
    /// store (stop both daemons first; then `state import` there).
    Export {
        #[command(flatten)]
        opts: StateOpts,
        /// The file to write (one JSON record per line).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Delete the corp's part of this store once the file is written.
        #[arg(long)]
        remove: bool,
    },
    /// Read a corp's part of a store, written by `state export`, into this store. The corp
    /// is the file's unless --corp names another; its part of this store must be empty.
    Import {
        #[command(flatten)]
        opts: StateOpts,
        /// The file `state export` wrote.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Forget a customer's remembered losses, so they are reported again when seen again.
    Forget {
        #[command(flatten)]
        opts: StateOpts,
        /// The customer's external id (`id` in Weiban).
        #[arg(long)]
        customer: String,
    },
}
