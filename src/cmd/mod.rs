//! The commands, one file each, and the dispatch between them.

mod backfill;
mod check;
#[cfg(feature = "demo")]
mod demo;
mod once;
mod preview;
mod report;
mod run;
mod staff;
mod state;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::store::Store;

/// Parses the command line, runs the command, turns errors into a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("churn-alert: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            // Errors may quote what Weiban sent (names, errmsg): control characters are shown
            // escaped, never played on the operator's terminal.
            let text = crate::logging::redact(&crate::logging::chain(&e));
            eprintln!(
                "churn-alert: {}",
                crate::render::escape::terminal_lines(&text)
            );
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Once(args) => once::once(&args).await,
        Command::Backfill(args) => backfill::backfill(&args).await,
        Command::Run(args) => run::run(&args).await,
        Command::Check(args) => check::check(&args).await,
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::demo(&args).await,
        #[cfg(not(feature = "demo"))]
        Command::Demo(_) => anyhow::bail!(
            "this binary was built without the demo (the `demo` feature); build with default features to try it"
        ),
        Command::Preview(args) => preview::preview(&args).await,
        Command::State(args) => state::state(args.command).await,
        Command::Staff(args) => staff::staff(&args).await,
        Command::Report(args) => report::report(&args).await,
    }
}

/// Loads the config and tells the log writer its secrets: how every command reads its config.
fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    let config = Config::load(path)?;
    config.register_secrets();
    crate::logging::set_timezone(config.timezone());
    Ok(config)
}

/// Loads the config and opens its store: what every working command starts with.
fn open(config_path: &std::path::Path) -> anyhow::Result<Pipeline> {
    open_pipeline(config_path, false)
}

/// Loads the config and opens its store; `dry` opens a store that does not exist yet as an
/// empty temporary one, so that a dry run creates nothing.
fn open_pipeline(config_path: &std::path::Path, dry: bool) -> anyhow::Result<Pipeline> {
    let config = load_config(config_path)?;
    let store = if dry && !config.store.path.exists() {
        Store::temporary()?
    } else {
        Store::open(&config.store.path)?
    };
    Pipeline::new(config, store)
        .with_context(|| format!("config {} cannot be used", config_path.display()))
}

/// Refuses a store that does not exist, for the commands that only look into one: opening it
/// would create an empty store at a mistyped `store.path` and report that nothing happened.
fn require_store(config: &Config, config_path: &std::path::Path) -> anyhow::Result<()> {
    if !Store::exists(&config.store.path) {
        anyhow::bail!(
            "there is no store at {} (config key `store.path` in {}): nothing has run with this config yet, or the path is mistyped; `churn-alert once` or `run` creates it",
            config.store.path.display(),
            config_path.display()
        );
    }
    Ok(())
}

/// Tells the operator which destinations were left waiting and why: secrets masked, and
/// control characters from customer or staff data shown as escapes.
fn print_waiting(waiting: &[(String, String)]) {
    use crate::render::escape::terminal;
    for (destination, reason) in waiting {
        let reason = crate::logging::redact(reason);
        eprintln!(
            "churn-alert: not delivered to {}: {}",
            terminal(destination),
            terminal(&reason)
        );
    }
}
