//! `churn-alert run`: every corp of the config (or of `--shard`'s share of it), each in a
//! loop of its own ([`corp_loop`]), until SIGINT or SIGTERM.
//!
//! The corps share one store (a namespace each), one server (`/healthz` names the corp that
//! fails, every metric has a `corp` label), and one pacer per robot URL. Their loops run side
//! by side on this task, each in its corp's scope: one corp's hanging Weiban, wrong secret or
//! refusing robots never delay another's cycle.
//!
//! SIGHUP reads the config again: a corp changed gets its new pipeline between two cycles, a
//! corp added starts (with its own first-run look-back), a corp removed stops; its store
//! namespace and what waits there are kept (`state` shows them), so adding it back resumes
//! where it was. A config that does not load keeps every corp as it runs.
//!
//! On SIGINT/SIGTERM every loop gets a few seconds to abandon its in-flight send (it stays
//! pending), then the store is flushed and the process exits 0.

mod corp_loop;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt as _};

use crate::cli::RunArgs;
use crate::config::Config;
use crate::corp::CorpName;
use crate::pipeline::Pipeline;
use crate::reload::Reload;
use crate::server::{Health, Roster, Served, StateSource};
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::sink::pacer::Pacer;
use crate::store::Store;
use crate::time::unix_now;
use corp_loop::CorpLoop;

/// A corp loop, running: how it ends is its name and its result.
type Running = Pin<Box<dyn Future<Output = (CorpName, anyhow::Result<()>)>>>;

pub(crate) async fn run(
    args: &RunArgs,
    shutdown: Shutdown,
    mut reload: Reload,
) -> anyhow::Result<ExitCode> {
    let (shared, configs) = served(args)?;
    let store = Store::open(&shared.store.path)?;
    let roster = Arc::new(Roster::default());
    let socket = serve(&shared, &store, &roster, args, &shutdown).await?;
    let mut daemon = Daemon {
        store,
        roster,
        pacer: Pacer::new(shared.wecom.messages_per_minute),
        store_path: shared.store.path.clone(),
        corps: BTreeMap::new(),
        loops: FuturesUnordered::new(),
    };
    for config in configs {
        daemon.start(config);
    }
    tracing::info!(
        corps = daemon.corps.len(),
        shard = %args.shard.map(|s| s.to_string()).unwrap_or_else(|| "all".into()),
        "churn-alert running"
    );
    let mut shutdown = shutdown;
    let mut failed = None;
    loop {
        tokio::select! {
            () = shutdown.recv() => break,
            () = reload.recv() => daemon.reload(args),
            Some((corp, ended)) = daemon.loops.next() => {
                daemon.corps.remove(&corp);
                match ended {
                    // Stopped on purpose (SIGHUP removed it): gone from /healthz.
                    Ok(()) => daemon.roster.remove(&corp),
                    // Stays in /healthz, failing and saying why, until a reload brings it back.
                    Err(e) => {
                        let reason = format!("this corp's loop stopped: {e:#}; fix the config and reload (SIGHUP)");
                        tracing::error!(corp = %corp, "{reason}; the other corps go on");
                        if let Some(served) = daemon.roster.get(&corp) {
                            served.health.poll_failed(unix_now(), &reason);
                        }
                        failed = Some(e);
                    }
                }
                if daemon.corps.is_empty() {
                    if let Some(e) = failed {
                        return Err(e);
                    }
                }
            }
        }
    }
    for corp in daemon.corps.values() {
        corp.stop.trigger();
    }
    while daemon.loops.next().await.is_some() {}
    if let Some(socket) = socket {
        // It holds the store; a client still connected gets a moment to finish.
        let _ = tokio::time::timeout(corp_loop::WIND_DOWN, socket).await;
    }
    daemon.store.flush().await?;
    tracing::info!("stopped; the store is flushed");
    Ok(ExitCode::SUCCESS)
}

/// A corp being served: how to stop it, and where its new pipeline goes on SIGHUP.
struct Handle {
    stop: ShutdownTrigger,
    reload: tokio::sync::mpsc::Sender<Pipeline>,
}

/// The corps this process serves, and what they share.
struct Daemon {
    /// The whole store; each corp works in its namespace.
    store: Store,
    store_path: std::path::PathBuf,
    roster: Arc<Roster>,
    /// Shared by every corp's robots (`[wecom] messages_per_minute` per robot URL).
    pacer: Pacer,
    corps: BTreeMap<CorpName, Handle>,
    loops: FuturesUnordered<Running>,
}

impl Daemon {
    /// Starts serving `config`'s corp, logging why when its pipeline cannot be built.
    fn start(&mut self, config: Config) {
        let corp = config.corp.clone();
        let pipeline = match self.pipeline(config) {
            Ok(pipeline) => pipeline,
            Err(e) => {
                tracing::error!(corp = %corp, "this corp cannot be served: {}", crate::logging::redact(&crate::logging::chain(&e)));
                return;
            }
        };
        let (stop, shutdown) = Shutdown::new();
        let (reload, reloads) = tokio::sync::mpsc::channel(1);
        let (reports_inbox, reports) = tokio::sync::mpsc::channel(4);
        let health = Arc::new(Health::new(
            unix_now(),
            std::time::Duration::from_secs(3600),
        ));
        self.roster.insert(
            corp.clone(),
            Served {
                health: Arc::clone(&health),
                reports: reports_inbox,
            },
        );
        let work = CorpLoop {
            pipeline,
            health,
            reloads,
            reports,
            shutdown,
        };
        let name = corp.clone();
        self.loops.push(Box::pin(async move {
            let ended = crate::server::corp_label::scope(name.clone(), work.run()).await;
            (name, ended)
        }));
        self.corps.insert(corp, Handle { stop, reload });
    }

    fn pipeline(&self, config: Config) -> anyhow::Result<Pipeline> {
        let store = self.store.corp(&config.corp)?;
        Pipeline::sharing(config, store, self.pacer.clone())
    }

    /// SIGHUP: the config as it is now. Changed corps get their new pipeline, new ones start,
    /// removed ones stop (their store namespace is kept). A config that does not load, or
    /// moves the store, changes nothing.
    fn reload(&mut self, args: &RunArgs) {
        let path = &args.config.config;
        let loaded = served(args).and_then(|(shared, configs)| {
            anyhow::ensure!(
                shared.store.path == self.store_path,
                "config key `store.path` changed from {} to {}; a reload cannot move the store: restart the daemon to use the new path",
                self.store_path.display(),
                shared.store.path.display()
            );
            Ok(configs)
        });
        let configs = match loaded {
            Ok(configs) => configs,
            Err(e) => {
                tracing::error!(
                    "SIGHUP: {} cannot be used, keeping the running configuration: {}",
                    path.display(),
                    crate::logging::redact(&crate::logging::chain(&e))
                );
                return;
            }
        };
        let wanted: Vec<CorpName> = configs.iter().map(|c| c.corp.clone()).collect();
        for config in configs {
            let corp = config.corp.clone();
            let Some(handle) = self.corps.get(&corp) else {
                tracing::info!(corp = %corp, "SIGHUP: corp added");
                self.start(config);
                continue;
            };
            match self.pipeline(config) {
                Ok(pipeline) => {
                    // The loop takes it between two cycles; a full inbox means a newer one
                    // is already waiting, which this one replaces at the next SIGHUP.
                    if handle.reload.try_send(pipeline).is_ok() {
                        tracing::info!(corp = %corp, "SIGHUP: configuration reloaded");
                    }
                }
                Err(e) => tracing::error!(
                    corp = %corp,
                    "SIGHUP: this corp's new configuration cannot be used, keeping its running one: {}",
                    crate::logging::redact(&crate::logging::chain(&e))
                ),
            }
        }
        let removed: Vec<CorpName> = self
            .corps
            .keys()
            .filter(|corp| !wanted.contains(corp))
            .cloned()
            .collect();
        for corp in removed {
            if let Some(handle) = self.corps.remove(&corp) {
                handle.stop.trigger();
            }
            self.roster.remove(&corp);
            tracing::info!(corp = %corp, "SIGHUP: corp removed; its store and what waits there are kept (`churn-alert state stats`), and adding it back resumes where it was");
        }
    }
}

/// The config's shared settings (from its first corp) and the corps this process serves:
/// all, or those of `--shard`, or the one `--corp` names.
fn served(args: &RunArgs) -> anyhow::Result<(SharedSettings, Vec<Config>)> {
    let path = &args.config.config;
    let mut configs = super::load_all(path)?;
    let shared = configs
        .first()
        .map(SharedSettings::of)
        .ok_or_else(|| anyhow::anyhow!("{} configures no corp", path.display()))?;
    if let Some(name) = &args.config.corp {
        configs = vec![Config::select(configs, Some(name), path)?];
    }
    if let Some(shard) = args.shard {
        let all = configs.len();
        configs.retain(|c| shard.serves(&c.corp));
        tracing::info!(%shard, served = configs.len(), of = all, "serving this shard's corps");
    }
    Ok((shared, configs))
}

/// What every corp of one config has alike: where the store is, the server, robot pacing.
struct SharedSettings {
    store: crate::config::StoreConfig,
    server: Option<(std::net::SocketAddr, Option<crate::secret::Secret>)>,
    wecom: crate::config::WecomConfig,
}

impl SharedSettings {
    fn of(config: &Config) -> Self {
        Self {
            store: crate::config::StoreConfig {
                path: config.store.path.clone(),
                retention: config.store.retention,
            },
            server: config.server.as_ref().map(|s| (s.listen, s.token.clone())),
            wecom: crate::config::WecomConfig {
                messages_per_minute: config.wecom.messages_per_minute,
                ..Default::default()
            },
        }
    }
}

/// `/state/*` on the unix socket beside the store, and `[server]` when configured.
async fn serve(
    shared: &SharedSettings,
    store: &Store,
    roster: &Arc<Roster>,
    args: &RunArgs,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let token = shared.server.as_ref().and_then(|(_, token)| token.clone());
    let state = StateSource {
        config_path: args.config.config.clone(),
        store: store.clone(),
        token,
        roster: Some(Arc::clone(roster)),
    };
    let socket =
        crate::server::state::serve_local(&shared.store.path, state.clone(), shutdown.clone());
    if let Some((listen, _)) = &shared.server {
        crate::server::serve(*listen, Arc::clone(roster), state, shutdown.clone()).await?;
    }
    Ok(socket)
}
