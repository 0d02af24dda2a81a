//! `/state/stats` and `/state/pending`: the store's contents while the daemon holds it, for
//! `churn-alert state stats|pending` (sled lets one process open a store); and, on the unix
//! socket only, `POST /report`, which hands `churn-alert report` to the daemon's own loop, so
//! that the report is queued and delivered by the one delivery core that owns the store,
//! between two cycles.
//!
//! They carry customer names and staff mailboxes, so they are served two ways only:
//! - on a unix socket beside the store (`<store.path>.sock`), always, mode 0600: whoever may
//!   read the store may ask, and `churn-alert state` on the same machine needs no
//!   configuration. The socket is bound in a private directory, narrowed to 0600 and only
//!   then moved into place, so nobody can connect in between;
//! - over TCP at `[server] listen` only when `[server] token` is set, with
//!   `Authorization: Bearer <token>`; without a token, TCP answers 404 and says why.

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::config::Config;
use crate::inspect::PendingReport;
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreStats};

/// Where `/state/*` reads from: the daemon's store, described against the config file as it
/// is now (so that a reload shows at once). `?corp=NAME` picks the corp; it may be left out
/// when the config has one.
#[derive(Clone)]
pub(crate) struct StateSource {
    pub config_path: PathBuf,
    /// The whole store; each request opens its corp's namespace.
    pub store: Store,
    /// `[server] token`: TCP serves `/state/*` only with it.
    pub token: Option<Secret>,
    /// The corps the daemon serves, whose loops take `churn-alert report` (`None`: not a
    /// daemon).
    pub roster: Option<std::sync::Arc<crate::server::Roster>>,
}

/// `?corp=NAME`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct CorpQuery {
    pub corp: Option<String>,
}

/// What `churn-alert report` asks the daemon for: a report's name, the corp and, optionally,
/// a period.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ReportAsk {
    pub name: String,
    pub period: Option<String>,
    /// The corp whose report it is; `None` when the daemon serves one.
    #[serde(default)]
    pub corp: Option<String>,
}

/// What the daemon did: the lines `churn-alert report` prints, and whether a destination did
/// not take the report (the command then exits 1).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ReportAnswer {
    pub lines: Vec<String>,
    pub failed: bool,
}

/// A report request on its way to the daemon's loop, with where the answer goes. An `Err` is
/// the reason the report was not produced (no such report, a period not over…).
pub(crate) struct ReportRequest {
    pub ask: ReportAsk,
    pub reply: tokio::sync::oneshot::Sender<Result<ReportAnswer, String>>,
}

/// The unix socket the daemon serves `/state/*` on: the store's path with `.sock` added.
pub(crate) fn socket_path(store_path: &Path) -> PathBuf {
    let mut name = store_path.as_os_str().to_owned();
    name.push(".sock");
    PathBuf::from(name)
}

/// `/state/*` for the TCP server: behind the token, or not served without one.
pub(super) fn over_tcp(source: StateSource) -> Router {
    let Some(token) = source.token.clone() else {
        return Router::new().route("/state/{*rest}", get(not_over_tcp));
    };
    routes(source).route_layer(axum::middleware::from_fn(
        move |headers: HeaderMap, request, next: axum::middleware::Next| {
            let allowed = authorized(&token, &headers);
            async move {
                if allowed {
                    next.run(request).await
                } else {
                    axum::response::IntoResponse::into_response(unauthorized())
                }
            }
        },
    ))
}

fn routes(source: StateSource) -> Router {
    Router::new()
        .route("/state/stats", get(state_stats))
        .route("/state/pending", get(state_pending))
        .route("/state/corps", get(state_corps))
        .with_state(source)
}

/// Serves `/state/*` on [`socket_path`] until shutdown, then removes the socket. A socket that
/// cannot be made is logged, not fatal: the daemon's work does not depend on it.
///
/// Returns the serving task: it holds the store until it ends, so the daemon waits for it
/// before saying the store is free.
pub(crate) fn serve_local(
    store_path: &Path,
    source: StateSource,
    mut shutdown: Shutdown,
) -> Option<tokio::task::JoinHandle<()>> {
    let path = socket_path(store_path);
    let (listener, inode) = match bind_private(&path) {
        Ok(bound) => bound,
        Err(e) => {
            tracing::warn!(
                socket = %path.display(),
                "cannot serve `churn-alert state` on a unix socket: {e}; `state stats|pending` \
                 then need [server] with a token while the daemon runs"
            );
            return None;
        }
    };
    tracing::info!(socket = %path.display(), "serving /state/* for `churn-alert state` (mode 0600)");
    // `POST /report` sends: only on this socket, never over TCP, whose token reads.
    let app = Router::new()
        .route("/report", post(report))
        .with_state(source.clone())
        .merge(routes(source));
    Some(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.recv().await })
            .await;
        if let Err(e) = served {
            tracing::error!("the state socket stopped: {e}");
        }
        // Only our own socket: a daemon started since may have bound a new one here.
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| m.ino() == inode);
        if ours {
            let _ = std::fs::remove_file(&path);
        }
    }))
}

/// Binds a unix socket at `path` that only this user can connect to: bound inside a fresh
/// 0700 directory of an unpredictable name, narrowed to 0600, then renamed over `path`
/// (replacing a stale socket that a killed daemon left; the store's lock says no other daemon
/// runs). Returns the listener and the socket's inode, which says later whether the socket at
/// `path` is still this one.
fn bind_private(path: &Path) -> std::io::Result<(tokio::net::UnixListener, u64)> {
    // std's hasher keys are random per process: an unpredictable name without a new crate.
    let nonce =
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), path);
    let private = path.with_file_name(format!(".churn-alert-{nonce:016x}"));
    // `create` fails if it exists: a directory planted there is never used.
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let bound = (|| {
        let inside = private.join("s");
        let listener = tokio::net::UnixListener::bind(&inside)?;
        std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o600))?;
        let inode = std::fs::symlink_metadata(&inside)?.ino();
        std::fs::rename(&inside, path)?;
        Ok((listener, inode))
    })();
    let _ = std::fs::remove_dir(&private);
    bound
}

/// Whether `headers` carry `Authorization: Bearer <token>`.
fn authorized(token: &Secret, headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given.as_bytes() == token.expose().as_bytes())
}

fn unauthorized() -> (StatusCode, String) {
    (
        StatusCode::UNAUTHORIZED,
        "this endpoint holds customer data: send `Authorization: Bearer <[server] token>`\n".into(),
    )
}

async fn not_over_tcp() -> (StatusCode, String) {
    (
        StatusCode::NOT_FOUND,
        "/state/* holds customer data and is not served over TCP without `[server] token`; \
         on the daemon's machine, `churn-alert state stats|pending` reads it over the unix \
         socket beside the store\n"
            .into(),
    )
}

/// `state stats`, for the CLI while this process holds the store.
async fn state_stats(
    State(source): State<StateSource>,
    Query(query): Query<CorpQuery>,
) -> Result<Json<StoreStats>, (StatusCode, String)> {
    let (_, store) = corp_of(&source, &query)?;
    store.stats().map(Json).map_err(internal)
}

/// The corps the store holds anything of, for `state stats|pending` without `--corp`.
async fn state_corps(
    State(source): State<StateSource>,
) -> Result<Json<Vec<crate::corp::CorpName>>, (StatusCode, String)> {
    source.store.corps().map(Json).map_err(internal)
}

/// `state pending`, for the CLI while this process holds the store.
async fn state_pending(
    State(source): State<StateSource>,
    Query(query): Query<CorpQuery>,
) -> Result<Json<Vec<PendingReport>>, (StatusCode, String)> {
    let (config, store) = corp_of(&source, &query)?;
    crate::inspect::pending(&config, &store)
        .map(Json)
        .map_err(internal)
}

/// The asked corp's config (as the file says now) and its store namespace. A corp the file
/// no longer has, whose data the store keeps, is described with no routes of its own.
fn corp_of(
    source: &StateSource,
    query: &CorpQuery,
) -> Result<(Config, Store), (StatusCode, String)> {
    let configs = Config::load_all(&source.config_path).map_err(internal)?;
    let config = crate::inspect::pick_corp(
        configs,
        query.corp.as_deref(),
        &source.store,
        &source.config_path,
    )
    .map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            crate::logging::redact(&format!("{e:#}")),
        )
    })?;
    let store = source.store.corp(&config.corp).map_err(internal)?;
    Ok((config, store))
}

/// `churn-alert report` while this process holds the store: done by the daemon's loop.
async fn report(
    State(source): State<StateSource>,
    Json(ask): Json<ReportAsk>,
) -> Result<Json<ReportAnswer>, (StatusCode, String)> {
    let unavailable = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is stopping; run `churn-alert report` again once it is up\n".to_owned(),
        )
    };
    let roster = source.roster.as_ref().ok_or_else(unavailable)?;
    let served = roster.names();
    let corp = match (&ask.corp, served.as_slice()) {
        (Some(name), _) => name.parse().map_err(|e: crate::corp::CorpError| {
            (StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        })?,
        (None, [one]) => one.clone(),
        (None, _) => {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                "the daemon serves several corps: name one with `--corp NAME`\n".into(),
            ))
        }
    };
    let inbox = roster.get(&corp).ok_or_else(|| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the daemon does not serve corp `{corp}` (not in its config, or another shard's)\n"
            ),
        )
    })?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    inbox
        .reports
        .send(ReportRequest { ask, reply })
        .await
        .map_err(|_| unavailable())?;
    match answer.await.map_err(|_| unavailable())? {
        Ok(answer) => Ok(Json(answer)),
        Err(reason) => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            crate::logging::redact(&reason),
        )),
    }
}

fn internal(e: impl std::fmt::Display) -> (StatusCode, String) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        crate::logging::redact(&e.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_let_in() {
        let token = Secret::new("a-long-enough-token");
        let mut headers = HeaderMap::new();
        assert!(!authorized(&token, &headers));
        headers.insert("authorization", "Bearer wrong".parse().unwrap());
        assert!(!authorized(&token, &headers));
        headers.insert("authorization", "a-long-enough-token".parse().unwrap());
        assert!(
            !authorized(&token, &headers),
            "the Bearer scheme is required"
        );
        headers.insert(
            "authorization",
            "Bearer a-long-enough-token".parse().unwrap(),
        );
        assert!(authorized(&token, &headers));
    }

    #[test]
    fn the_socket_sits_beside_the_store() {
        assert_eq!(
            socket_path(Path::new("/var/lib/churn-alert/store")),
            Path::new("/var/lib/churn-alert/store.sock")
        );
    }
}
