//! `churn-alert state`: look into the store and repair it.

use std::process::ExitCode;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::{StateCommand, StateOpts};
use crate::config::Config;
use crate::corp::CorpName;
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
        StateCommand::Export { opts, out, remove } => export(&opts, &out, remove).await,
        StateCommand::Import { opts, from } => import(opts, &from).await,
    }
}

/// The store, opened; or, while the daemon holds it, where to ask the daemon.
enum Opened {
    Store(Store),
    Daemon(Daemon),
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
fn open_for_reading(opts: &StateOpts) -> anyhow::Result<(Vec<Config>, Opened)> {
    let configs = super::load_all(&opts.config.config)?;
    let Some(config) = configs.first() else {
        anyhow::bail!("{} configures no corp", opts.config.config.display());
    };
    super::require_store(config, &opts.config.config)?;
    match Store::open(&config.store.path) {
        Ok(store) => Ok((configs, Opened::Store(store))),
        Err(StoreError::Locked { path }) => {
            let socket = crate::server::state::socket_path(&config.store.path);
            if socket.exists() {
                return Ok((configs, Opened::Daemon(Daemon::Socket(socket))));
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
                    Ok((configs, Opened::Daemon(Daemon::Tcp(listen, token))))
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

/// The corps `state stats|pending` shows, with the zone their times show in: the one
/// `--corp` names, else every corp of the config and every corp the store still holds
/// (SIGHUP removed it from the config; its data is kept).
async fn corps_to_show(
    opts: &StateOpts,
    configs: &[Config],
    opened: &Opened,
) -> anyhow::Result<Vec<(CorpName, crate::zone::Zone)>> {
    let in_store: Vec<CorpName> = match opened {
        Opened::Store(store) => store.corps()?,
        Opened::Daemon(daemon) => from_daemon(daemon, "corps").await?,
    };
    let zone_of = |corp: &CorpName| {
        configs
            .iter()
            .find(|c| &c.corp == corp)
            .or(configs.first())
            .map_or(crate::zone::Zone::shanghai(), Config::timezone)
    };
    if let Some(name) = &opts.config.corp {
        let corp: CorpName = name.parse()?;
        let known = configs.iter().any(|c| c.corp == corp) || in_store.contains(&corp);
        anyhow::ensure!(
            known,
            "{} has no corp named `{corp}` (--corp), and the store holds none",
            opts.config.config.display()
        );
        let zone = zone_of(&corp);
        return Ok(vec![(corp, zone)]);
    }
    let mut corps: Vec<CorpName> = configs.iter().map(|c| c.corp.clone()).collect();
    for corp in in_store {
        if !corps.contains(&corp) {
            corps.push(corp);
        }
    }
    Ok(corps
        .into_iter()
        .map(|c| {
            let zone = zone_of(&c);
            (c, zone)
        })
        .collect())
}

/// A corp's part of the opened store, upgraded to this release's format with its config.
fn corp_store(opts: &StateOpts, store: &Store, corp: &CorpName) -> anyhow::Result<(Config, Store)> {
    let path = &opts.config.config;
    let config =
        crate::inspect::pick_corp(super::load_all(path)?, Some(corp.as_str()), store, path)?;
    let corp_store = store.corp(corp)?;
    corp_store.migrate(&config)?;
    Ok((config, corp_store))
}

/// Opens the store of the corp `--corp` names (or the only one) to change it.
fn open(opts: &StateOpts) -> anyhow::Result<(Config, Store)> {
    open_or_create(opts, false)
}

/// Like [`open`]; with `create`, a store that does not exist yet is made (`state import`
/// onto a new shard's empty volume).
fn open_or_create(opts: &StateOpts, create: bool) -> anyhow::Result<(Config, Store)> {
    let configs = super::load_all(&opts.config.config)?;
    let Some(first) = configs.first() else {
        anyhow::bail!("{} configures no corp", opts.config.config.display());
    };
    if !create {
        super::require_store(first, &opts.config.config)?;
    }
    let whole = Store::open(&first.store.path).map_err(|e| match e {
        StoreError::Locked { path } => anyhow::anyhow!(
            "the store at {path} is in use by the running daemon; changing state needs it to itself: stop the daemon first (`state stats` and `state pending` work while it runs, through [server])"
        ),
        e => e.into(),
    })?;
    let config = crate::inspect::pick_corp(
        configs,
        opts.config.corp.as_deref(),
        &whole,
        &opts.config.config,
    )?;
    let store = whole.corp(&config.corp)?;
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

/// Whether `corps` is more than the one corp of a single-corp config: then each corp's part
/// of the output is headed by its name (JSON: an object by corp).
fn by_corp(corps: &[(CorpName, crate::zone::Zone)]) -> bool {
    !matches!(corps, [(corp, _)] if corp.is_default())
}

async fn stats(opts: &StateOpts) -> anyhow::Result<ExitCode> {
    let (configs, opened) = open_for_reading(opts)?;
    let corps = corps_to_show(opts, &configs, &opened).await?;
    let mut all = std::collections::BTreeMap::new();
    for (corp, tz) in &corps {
        let stats: StoreStats = match &opened {
            Opened::Store(store) => corp_store(opts, store, corp)?.1.stats()?,
            Opened::Daemon(daemon) => from_daemon(daemon, &format!("stats?corp={corp}")).await?,
        };
        if opts.json {
            all.insert(corp.to_string(), stats);
            continue;
        }
        if by_corp(&corps) {
            let gone = if configs.iter().any(|c| &c.corp == corp) {
                ""
            } else {
                " (not in the config: kept in the store)"
            };
            crate::cmd::console::show!("corp {corp}{gone}:");
        }
        show_stats(&stats, *tz);
    }
    print_all_json(opts, &corps, all)?;
    Ok(ExitCode::SUCCESS)
}

/// `--json`: one corp's value as it always was, or an object of them by corp.
fn print_all_json<T: Serialize>(
    opts: &StateOpts,
    corps: &[(CorpName, crate::zone::Zone)],
    all: std::collections::BTreeMap<String, T>,
) -> anyhow::Result<()> {
    if !opts.json {
        return Ok(());
    }
    if by_corp(corps) {
        return print_json(&all);
    }
    match all.into_values().next() {
        Some(one) => print_json(&one),
        None => Ok(()),
    }
}

fn show_stats(stats: &StoreStats, tz: crate::zone::Zone) {
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
}

async fn pending(opts: &StateOpts) -> anyhow::Result<ExitCode> {
    let (configs, opened) = open_for_reading(opts)?;
    let corps = corps_to_show(opts, &configs, &opened).await?;
    let mut all = std::collections::BTreeMap::new();
    for (corp, tz) in &corps {
        let reports: Vec<inspect::PendingReport> = match &opened {
            Opened::Store(store) => {
                let (config, store) = corp_store(opts, store, corp)?;
                inspect::pending(&config, &store)?
            }
            Opened::Daemon(daemon) => from_daemon(daemon, &format!("pending?corp={corp}")).await?,
        };
        if opts.json {
            all.insert(corp.to_string(), reports);
            continue;
        }
        if by_corp(&corps) {
            crate::cmd::console::show!("corp {corp}:");
        }
        show_pending(&reports, *tz);
    }
    print_all_json(opts, &corps, all)?;
    Ok(ExitCode::SUCCESS)
}

fn show_pending(reports: &[inspect::PendingReport], tz: crate::zone::Zone) {
    if reports.is_empty() {
        crate::cmd::console::show!("nothing is pending: every loss found so far was delivered");
    }
    for r in reports {
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

/// `state export`: the corp's namespace into `out`, written to a temporary file and renamed,
/// so that a file at `out` is always whole; `--remove` then clears the namespace.
async fn export(opts: &StateOpts, out: &std::path::Path, remove: bool) -> anyhow::Result<ExitCode> {
    let (config, store) = open(opts)?;
    let partial = out.with_extension("partial");
    let records = {
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        let records = store.export(&config.corp, &mut writer)?;
        writer
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .with_context(|| format!("cannot write {}", partial.display()))?;
        records
    };
    std::fs::rename(&partial, out).with_context(|| format!("cannot write {}", out.display()))?;
    if remove {
        store.clear()?;
    }
    if opts.json {
        print_json(
            &serde_json::json!({ "corp": config.corp, "records": records, "removed": remove }),
        )?;
    } else {
        crate::cmd::console::show!(
            "exported corp {} ({records} records) to {}{}",
            config.corp,
            out.display(),
            if remove {
                "; removed from this store"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `state import`: an export into this store's (empty) namespace of its corp.
async fn import(mut opts: StateOpts, from: &std::path::Path) -> anyhow::Result<ExitCode> {
    let file =
        std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut reader = std::io::BufReader::new(file);
    if opts.config.corp.is_none() {
        opts.config.corp = Some(crate::store::namespace::exported_corp(from)?);
    }
    let (config, store) = open_or_create(&opts, true)?;
    let (records, exported_from) = store
        .import(&config.corp, &mut reader)
        .with_context(|| format!("{} was not imported", from.display()))?;
    if opts.json {
        print_json(
            &serde_json::json!({ "corp": config.corp, "records": records, "exported_from": exported_from }),
        )?;
    } else {
        crate::cmd::console::show!(
            "imported {records} records into corp {} (exported from corp {exported_from}); start the daemon that serves it",
            config.corp
        );
    }
    Ok(ExitCode::SUCCESS)
}
