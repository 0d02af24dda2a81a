//! `churn-alert state`: look into the store and repair it.

use std::process::ExitCode;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::{StateCommand, StateOpts};
use crate::config::Config;
use crate::destination::DestinationId;
use crate::inspect;
use crate::render::escape::terminal;
use crate::secret::Secret;
use crate::store::{Store, StoreError, StoreStats};
use crate::time::rfc3339 as time;

pub(crate) async fn state(command: StateCommand) -> anyhow::Result<ExitCode> {
    match command {
        StateCommand::Stats(opts) => stats(&opts).await,
        StateCommand::Pending(opts) => pending(&opts).await,
        StateCommand::Retry { opts, route } => retry(&opts, route.as_deref()).await,
        StateCommand::Forget { opts, customer } => forget(&opts, &customer).await,
        StateCommand::Drop { opts, destination } => drop_pending(&opts, &destination).await,
    }
}

/// The store, opened; or, while the daemon holds it, where to ask the daemon.
enum Opened {
    Store(Config, Store),
    Daemon(Config, Daemon),
}

/// How the running daemon is asked for `/state/*`.
enum Daemon {
    /// The unix socket beside the store (no configuration needed).
    Socket(PathBuf),
    /// `[server] listen`, with `[server] token`.
    Tcp(SocketAddr, Secret),
}

/// Opens the store for reading: through the daemon when it holds the store, over the unix
/// socket beside the store, else over `[server]` with its token.
fn open_for_reading(opts: &StateOpts) -> anyhow::Result<Opened> {
    let config = super::load_config(&opts.config.config)?;
    super::require_store(&config, &opts.config.config)?;
    match Store::open(&config.store.path) {
        Ok(store) => {
            store.migrate(&config)?;
            Ok(Opened::Store(config, store))
        }
        Err(StoreError::Locked { path }) => {
            let socket = crate::server::state::socket_path(&config.store.path);
            if socket.exists() {
                return Ok(Opened::Daemon(config, Daemon::Socket(socket)));
            }
            let server = config
                .server
                .as_ref()
                .and_then(|s| Some((s.listen, s.token.clone()?)));
            match server {
                Some((mut listen, token)) => {
                    if listen.ip().is_unspecified() {
                        listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                    }
                    Ok(Opened::Daemon(config, Daemon::Tcp(listen, token)))
                }
                None => anyhow::bail!(
                    "the store at {path} is in use by the running daemon, and its state socket {} \
                     is missing (a daemon older than this command, or a socket it could not \
                     make: see its log); restart the daemon, set [server] listen and token, or \
                     stop it first",
                    socket.display()
                ),
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn open(opts: &StateOpts) -> anyhow::Result<(Config, Store)> {
    let config = super::load_config(&opts.config.config)?;
    super::require_store(&config, &opts.config.config)?;
    let store = Store::open(&config.store.path).map_err(|e| match e {
        StoreError::Locked { path } => anyhow::anyhow!(
            "the store at {path} is in use by the running daemon; changing state needs it to itself: stop the daemon first (`state stats` and `state pending` work while it runs, through [server])"
        ),
        e => e.into(),
    })?;
    store.migrate(&config)?;
    Ok((config, store))
}

/// Asks the running daemon for `/state/{what}`.
async fn from_daemon<T: serde::de::DeserializeOwned>(
    daemon: &Daemon,
    what: &str,
) -> anyhow::Result<T> {
    let timeout = std::time::Duration::from_secs(30);
    let (client, url, shown) = match daemon {
        Daemon::Socket(path) => {
            let client = crate::http::builder(timeout)
                .unix_socket(path.as_path())
                .build()?;
            let shown = format!("the daemon's socket {}", path.display());
            (client, format!("http://localhost/state/{what}"), shown)
        }
        Daemon::Tcp(listen, _) => {
            let url = format!("http://{listen}/state/{what}");
            (
                crate::http::client(timeout)?,
                url.clone(),
                format!("the daemon at {url}"),
            )
        }
    };
    let mut request = client.get(&url);
    if let Daemon::Tcp(_, token) = daemon {
        request = request.bearer_auth(token.expose());
    }
    let answer = request
        .send()
        .await
        .with_context(|| format!("the store is in use and {shown} does not answer"))?;
    let status = answer.status();
    let body = answer.text().await?;
    anyhow::ensure!(status.is_success(), "{shown} answered {status}: {body}");
    serde_json::from_str(&body).with_context(|| format!("{shown} answered something else"))
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    crate::cmd::console::show!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn stats(opts: &StateOpts) -> anyhow::Result<ExitCode> {
    let (config, stats): (Config, StoreStats) = match open_for_reading(opts)? {
        Opened::Store(config, store) => {
            let stats = store.stats()?;
            (config, stats)
        }
        Opened::Daemon(config, daemon) => {
            let stats = from_daemon(&daemon, "stats").await?;
            (config, stats)
        }
    };
    let tz = config.timezone();
    if opts.json {
        print_json(&stats)?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::cmd::console::show!("remembered losses:   {}", stats.remembered_losses);
    crate::cmd::console::show!(
        "last window fetched: {}",
        stats
            .last_window_end
            .map_or_else(|| "never".to_owned(), |t| format!("up to {}", time(tz, t)))
    );
    crate::cmd::console::show!("store size on disk:  {} bytes", stats.size_on_disk);
    for (route, count) in &stats.held {
        crate::cmd::console::show!("held (no destination yet): route `{route}`: {count}  (see `churn-alert state pending`)");
    }
    if stats.pending.is_empty() {
        crate::cmd::console::show!("pending deliveries:  none");
    } else {
        crate::cmd::console::show!("pending deliveries:");
        for (destination, count) in &stats.pending {
            crate::cmd::console::show!("  {destination}: {count}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn pending(opts: &StateOpts) -> anyhow::Result<ExitCode> {
    let (config, reports) = match open_for_reading(opts)? {
        Opened::Store(config, store) => {
            let reports = inspect::pending(&config, &store)?;
            (config, reports)
        }
        Opened::Daemon(config, daemon) => {
            let reports = from_daemon(&daemon, "pending").await?;
            (config, reports)
        }
    };
    let tz = config.timezone();
    if opts.json {
        print_json(&reports)?;
        return Ok(ExitCode::SUCCESS);
    }
    if reports.is_empty() {
        crate::cmd::console::show!("nothing is pending: every loss found so far was delivered");
    }
    for r in &reports {
        crate::cmd::console::show!(
            "{}: {} pending, {}",
            terminal(&r.description),
            r.pending,
            r.status
        );
        if let Some(since) = r.oldest_enqueued_at {
            crate::cmd::console::show!("  waiting since {}", time(tz, since));
        }
        if let Some(reason) = &r.reason {
            crate::cmd::console::show!("  why: {}", terminal(reason));
        }
        if let Some(since) = r.failing_since {
            crate::cmd::console::show!("  failing since {}", time(tz, since));
        }
        if let Some(at) = r.retry_at {
            crate::cmd::console::show!("  next attempt after {}", time(tz, at));
        }
        match (r.status.as_str(), &r.destination) {
            ("stranded", Some(destination)) => crate::cmd::console::show!(
                "  this destination left the config: restore it, or discard with `churn-alert state drop --destination {destination}`"
            ),
            ("failed", Some(destination)) => crate::cmd::console::show!(
                "  after fixing the config: churn-alert state retry --route {}",
                destination.route
            ),
            ("held", _) => crate::cmd::console::show!(
                "  routed again after each read of the org chart and each reload; after `directory.hold_for` they go to the route's own robots and mailboxes, else to `[fallback]`"
            ),
            _ => {}
        }
        for message in &r.messages {
            crate::cmd::console::show!("  - {}", terminal(message));
        }
        for customer in r.customers.iter().take(10) {
            crate::cmd::console::show!("  - {}", terminal(customer));
        }
        if r.customers.len() > 10 {
            crate::cmd::console::show!("  … and {} more", r.customers.len() - 10);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn retry(opts: &StateOpts, route: Option<&str>) -> anyhow::Result<ExitCode> {
    let (config, store) = open(opts)?;
    if let Some(route) = route {
        if config.route(route).is_none() {
            anyhow::bail!("no route named `{route}` in the config");
        }
    }
    let refused = store.retry_refused(route).await?;
    if refused > 0 && !opts.json {
        crate::cmd::console::show!(
            "{refused} refused report or alert message(s) are tried again on the next cycle"
        );
    }
    let mut cleared = Vec::new();
    for id in store.destination_states()?.keys() {
        let in_route = route.is_none_or(|r| id.route == r);
        if in_route && store.clear_destination_state(id).await? {
            cleared.push(id.clone());
        }
    }
    if opts.json {
        print_json(&serde_json::json!({ "cleared": cleared }))?;
    } else if cleared.is_empty() && refused == 0 {
        crate::cmd::console::show!("no failed or waiting destination to clear");
    } else {
        for id in &cleared {
            crate::cmd::console::show!(
                "cleared {id}: its pending deliveries are tried on the next cycle"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn drop_pending(opts: &StateOpts, destination: &str) -> anyhow::Result<ExitCode> {
    let id: DestinationId = destination.parse()?;
    let (_, store) = open(opts)?;
    let dropped = store.drop_pending(&id).await?;
    if opts.json {
        print_json(&serde_json::json!({ "destination": destination, "dropped": dropped }))?;
    } else {
        crate::cmd::console::show!(
            "dropped {dropped} pending deliveries (losses, report parts, alerts) of {destination}; they will not be delivered"
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn forget(opts: &StateOpts, customer: &str) -> anyhow::Result<ExitCode> {
    let (_, store) = open(opts)?;
    let forgotten = store.forget_customer(customer).await?;
    if opts.json {
        print_json(&serde_json::json!({ "customer": customer, "forgotten": forgotten }))?;
    } else if forgotten == 0 {
        crate::cmd::console::show!("no remembered loss of customer {customer}");
    } else {
        crate::cmd::console::show!(
            "forgot {forgotten} loss(es) of customer {customer}; they are reported again when a window that contains them is fetched"
        );
    }
    Ok(ExitCode::SUCCESS)
}
