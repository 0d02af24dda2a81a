//! The optional HTTP endpoint: `/healthz` for liveness checks, `/metrics` for Prometheus,
//! and `/state/*` (customer data) only with `[server] token`; [`state`] also serves `/state/*`
//! on a unix socket beside the store, for `churn-alert state` on the same machine.
//!
//! Metrics are recorded all over the program with the `metrics` facade; this module installs
//! the Prometheus recorder, behind [`corp_label`], and renders it. Health is one fact per corp
//! ([`health`]): how long ago its last poll of Weiban succeeded. An operator's monitor fails
//! before a manager notices missing alerts, and `/healthz` names the corp that fails.

pub(crate) mod corp_label;
mod health;
pub(crate) mod state;

pub(crate) use health::{Health, Roster, Served};
pub(crate) use state::StateSource;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::shutdown::Shutdown;

#[derive(Clone)]
struct AppState {
    roster: Arc<Roster>,
    metrics: PrometheusHandle,
}

/// Installs the Prometheus recorder and serves both endpoints until shutdown.
pub(crate) async fn serve(
    listen: SocketAddr,
    roster: Arc<Roster>,
    state: StateSource,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    // One recorder per process: a daemon run in process a second time (the tests) serves the
    // metrics the first one installed.
    static RECORDER: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    let metrics = match RECORDER.get() {
        Some(handle) => handle.clone(),
        None => {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(corp_label::CorpLabel(recorder))
                .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
            RECORDER.get_or_init(|| handle).clone()
        }
    };
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .with_state(AppState { roster, metrics })
        .merge(state::over_tcp(state));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on server.listen = {listen}: {e}"))?;
    tracing::info!(%listen, "serving /healthz and /metrics over TCP");
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

/// The series the dashboard and the alert rules (`deploy/`) read, at 0 from the start: a
/// series that appears only with its first event (born at 1) leaves `increase()` blind to it.
pub(crate) fn announce_series(config: &crate::config::Config) {
    for name in [
        "churn_alert_cycles_total",
        "churn_alert_losses_found_total",
        "churn_alert_poll_failures_total",
        "churn_alert_weiban_errors_total",
        "churn_alert_robot_refusals_total",
        "churn_alert_reports_delivered_total",
        "churn_alert_messages_failed_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    metrics::gauge!("churn_alert_refusing_destinations").set(0.0);
    for sink in ["wecom", "email"] {
        metrics::counter!("churn_alert_losses_delivered_total", "sink" => sink).increment(0);
    }
    for report in &config.reports {
        metrics::counter!("churn_alert_reports_delivered_total", "report" => report.name.clone())
            .increment(0);
    }
}

async fn healthz(State(state): State<AppState>) -> (StatusCode, String) {
    match state.roster.check(crate::time::unix_now()) {
        Ok(body) => (StatusCode::OK, body),
        Err(body) => (StatusCode::SERVICE_UNAVAILABLE, body),
    }
}

async fn render_metrics(State(state): State<AppState>) -> String {
    state.metrics.render()
}
