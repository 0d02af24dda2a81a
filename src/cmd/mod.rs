//! The commands, one file each, and the dispatch between them.

mod backfill;
mod check;
pub(crate) mod console;
#[cfg(feature = "demo")]
mod demo;
mod generate_docs;
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
use crate::reload::Reload;
use crate::shutdown::Shutdown;
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
    match runtime.block_on(dispatch(cli.command, None, None)) {
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

/// What a command run in process left behind.
pub struct InProcess {
    pub code: ExitCode,
    /// What it would have printed on stdout.
    pub stdout: String,
    /// What it would have printed on stderr: its own lines, its log, and its error.
    pub stderr: String,
}

/// Runs one command in the caller's process and runtime, as `main` runs it from the command
/// line (`args` without the program name), with `shutdown` in place of SIGINT and SIGTERM.
///
/// For the tests: on a current-thread runtime under paused time, a whole daemon runs in
/// milliseconds. Its log goes to [`InProcess::stderr`] (at `churn_alert=debug`), never to the
/// process's stderr; nothing global is installed.
pub async fn in_process(args: &[&str], shutdown: Shutdown) -> InProcess {
    in_process_reloadable(args, shutdown, None).await
}

/// [`in_process`], with `reload` in place of SIGHUP for `run` (`None`: no reload ever).
pub async fn in_process_reloadable(
    args: &[&str],
    shutdown: Shutdown,
    reload: Option<Reload>,
) -> InProcess {
    let reload = reload.unwrap_or_else(|| Reload::new().1);
    let streams = console::Streams::default();
    let _output = streams.install();
    let _log = crate::logging::capture(streams.err.clone());
    let program = std::iter::once("churn-alert").chain(args.iter().copied());
    let result = match Cli::try_parse_from(program) {
        Ok(cli) => dispatch(cli.command, Some(shutdown), Some(reload)).await,
        Err(e) => Err(anyhow::anyhow!("{e}")),
    };
    let code = result.unwrap_or_else(|e| {
        console::say!(
            "churn-alert: {}",
            crate::logging::redact(&crate::logging::chain(&e))
        );
        ExitCode::FAILURE
    });
    InProcess {
        code,
        stdout: streams.out.text(),
        stderr: streams.err.text(),
    }
}

/// Runs `command`. The commands that stop gracefully take `shutdown`, or, without one, listen
/// for SIGINT and SIGTERM; the others end at the first signal, as any program does. `run`
/// reloads on `reload`, or, without one, on SIGHUP.
async fn dispatch(
    command: Command,
    shutdown: Option<Shutdown>,
    reload: Option<Reload>,
) -> anyhow::Result<ExitCode> {
    let stop = || shutdown.clone().unwrap_or_else(Shutdown::on_signals);
    use crate::server::corp_label::scope;
    match command {
        Command::Once(args) => scope(corp_of(&args.config), once::once(&args, stop())).await,
        Command::Backfill(args) => {
            scope(corp_of(&args.config), backfill::backfill(&args, stop())).await
        }
        Command::Run(args) => {
            // Before anything shows the daemon is up: SIGHUP's default action ends the process.
            let reload = match reload {
                Some(reload) => reload,
                None => Reload::on_sighup()?,
            };
            run::run(&args, stop(), reload).await
        }
        Command::Check(args) => check::check(&args).await,
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::demo(&args).await,
        #[cfg(not(feature = "demo"))]
        Command::Demo(_) => anyhow::bail!(
            "this binary was built without the demo (the `demo` feature); build with default features to try it"
        ),
        Command::Preview(args) => scope(corp_of(&args.config), preview::preview(&args)).await,
        Command::State(args) => state::state(args.command).await,
        Command::Staff(args) => scope(corp_of(&args.config), staff::staff(&args)).await,
        Command::Report(args) => {
            scope(corp_of(&args.config), report::report(&args, stop())).await
        }
        Command::GenerateDocs(args) => generate_docs::generate_docs(&args),
    }
}

/// The corp a one-corp command works on, for its log lines and metrics: `--corp`, else the
/// config's only corp (a config that does not load fails in the command, with its error).
fn corp_of(args: &crate::cli::ConfigArg) -> crate::corp::CorpName {
    if let Some(corp) = args.corp.as_deref().and_then(|name| name.parse().ok()) {
        return corp;
    }
    match Config::load_all(&args.config).as_deref() {
        Ok([one]) => one.corp.clone(),
        _ => crate::corp::CorpName::default_corp(),
    }
}

/// Loads every corp's config and tells the log writer their secrets.
fn load_all(path: &std::path::Path) -> anyhow::Result<Vec<Config>> {
    let configs = Config::load_all(path)?;
    for config in &configs {
        config.register_secrets();
    }
    if let Some(config) = configs.first() {
        crate::logging::set_timezone(config.timezone());
    }
    Ok(configs)
}

/// Loads the config of the corp `--corp` names (or the only one) and tells the log writer the
/// secrets: how every command that works on one corp reads its config.
fn load_config(args: &crate::cli::ConfigArg) -> anyhow::Result<Config> {
    let configs = load_all(&args.config)?;
    let config = Config::select(configs, args.corp.as_deref(), &args.config)?;
    crate::logging::set_timezone(config.timezone());
    Ok(config)
}

/// Loads the config and opens its store: what every working command starts with.
fn open(args: &crate::cli::ConfigArg) -> anyhow::Result<Pipeline> {
    open_pipeline(args, false)
}

/// Loads the config and opens its corp's store; `dry` opens a store that does not exist yet
/// as an empty temporary one, so that a dry run creates nothing.
fn open_pipeline(args: &crate::cli::ConfigArg, dry: bool) -> anyhow::Result<Pipeline> {
    let config = load_config(args)?;
    let store = if dry && !config.store.path.exists() {
        Store::temporary()?
    } else {
        Store::open(&config.store.path)?.corp(&config.corp)?
    };
    Pipeline::new(config, store)
        .with_context(|| format!("config {} cannot be used", args.config.display()))
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
        console::say!(
            "churn-alert: not delivered to {}: {}",
            terminal(destination),
            terminal(&reason)
        );
    }
}
