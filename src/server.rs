//! The optional HTTP endpoint: `/healthz` for liveness checks, `/metrics` for Prometheus.
//!
//! Metrics are recorded all over the program with the `metrics` facade; this module installs
//! the Prometheus recorder and renders it. Health is one fact: how long ago the last poll of
//! Weiban succeeded. An operator's monitor fails before a manager notices missing alerts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreStats};

/// When the last poll succeeded, and how many losses wait for destinations that left the
/// config; shared between the pipeline and the server.
#[derive(Debug)]
pub(crate) struct Health {
    started_at: i64,
    last_success: AtomicI64,
    max_age: i64,
    stranded: AtomicUsize,
}

impl Health {
    pub fn new(now: i64, max_age: Duration) -> Self {
        Self {
            started_at: now,
            last_success: AtomicI64::new(0),
            max_age: i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX / 4),
            stranded: AtomicUsize::new(0),
        }
    }

    /// Losses pending for destinations that left the config, with nowhere else to go.
    pub fn set_stranded(&self, losses: usize) {
        self.stranded.store(losses, Ordering::Relaxed);
        metrics::gauge!("churn_alert_stranded_deliveries").set(losses as f64);
    }

    pub fn poll_succeeded(&self, at: i64) {
        self.last_success.store(at, Ordering::Relaxed);
        metrics::gauge!("churn_alert_last_successful_poll_timestamp_seconds").set(at as f64);
    }

    /// `Ok(why)` when healthy, `Err(why not)` otherwise.
    pub fn check(&self, now: i64) -> Result<String, String> {
        let last = self.last_success.load(Ordering::Relaxed);
        if last == 0 {
            let up = now - self.started_at;
            return if up <= self.max_age {
                Ok(format!(
                    "starting: no poll finished yet ({up}s since start)\n"
                ))
            } else {
                Err(format!(
                    "no successful poll of Weiban in the {up}s since start (allowed: {}s); see the logs\n",
                    self.max_age
                ))
            };
        }
        let age = now - last;
        let stranded = self.stranded.load(Ordering::Relaxed);
        if age <= self.max_age && stranded > 0 {
            // Polling works, so the process is alive; a person still has to act.
            Ok(format!(
                "degraded: {stranded} loss(es) wait for destinations that left the config; see `churn-alert state pending` (last successful poll {age}s ago)\n"
            ))
        } else if age <= self.max_age {
            Ok(format!("ok: last successful poll {age}s ago\n"))
        } else {
            Err(format!(
                "last successful poll of Weiban was {age}s ago (allowed: {}s); see the logs\n",
                self.max_age
            ))
        }
    }
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: PrometheusHandle,
    state: StateSource,
}

/// Where `/state/*` reads from: the daemon's store, described against the config file as it
/// is now (so that a reload shows at once).
#[derive(Clone)]
pub(crate) struct StateSource {
    pub config_path: PathBuf,
    pub store: Store,
}

/// Installs the Prometheus recorder and serves both endpoints until shutdown.
pub(crate) async fn serve(
    listen: SocketAddr,
    health: Arc<Health>,
    state: StateSource,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .route("/state/stats", get(state_stats))
        .route("/state/pending", get(state_pending))
        .with_state(AppState {
            health,
            metrics,
            state,
        });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on server.listen = {listen}: {e}"))?;
    tracing::info!(%listen, "serving /healthz and /metrics");
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.recv().await })
            .await;
        if let Err(e) = served {
            tracing::error!("the metrics server stopped: {e}");
        }
    });
    Ok(())
}

async fn healthz(State(state): State<AppState>) -> (StatusCode, String) {
    match state.health.check(crate::time::unix_now()) {
        Ok(body) => (StatusCode::OK, body),
        Err(body) => (StatusCode::SERVICE_UNAVAILABLE, body),
    }
}

async fn render_metrics(State(state): State<AppState>) -> String {
    state.metrics.render()
}

/// `state stats`, for the CLI while this process holds the store.
async fn state_stats(
    State(state): State<AppState>,
) -> Result<Json<StoreStats>, (StatusCode, String)> {
    state.state.store.stats().map(Json).map_err(internal)
}

/// `state pending`, for the CLI while this process holds the store.
async fn state_pending(
    State(state): State<AppState>,
) -> Result<Json<Vec<crate::inspect::PendingReport>>, (StatusCode, String)> {
    let source = &state.state;
    let config = Config::load(&source.config_path).map_err(internal)?;
    crate::inspect::pending(&config, &source.store)
        .map(Json)
        .map_err(internal)
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
    fn health_follows_the_last_successful_poll() {
        let health = Health::new(1000, Duration::from_secs(60));
        assert!(health.check(1030).is_ok(), "starting up");
        assert!(health
            .check(1100)
            .unwrap_err()
            .contains("no successful poll"));
        health.poll_succeeded(1090);
        assert!(health.check(1100).is_ok());
        health.set_stranded(3);
        assert!(health
            .check(1100)
            .unwrap()
            .starts_with("degraded: 3 loss(es)"));
        health.set_stranded(0);
        assert!(health.check(1100).unwrap().starts_with("ok"));
        assert!(health.check(1200).unwrap_err().contains("110s ago"));
    }
}
