//! The optional HTTP endpoint: `/healthz` for liveness checks, `/metrics` for Prometheus,
//! and `/state/*` (customer data) only with `[server] token`; [`state`] also serves `/state/*`
//! on a unix socket beside the store, for `churn-alert state` on the same machine.
//!
//! Metrics are recorded all over the program with the `metrics` facade; this module installs
//! the Prometheus recorder and renders it. Health is one fact: how long ago the last poll of
//! Weiban succeeded. An operator's monitor fails before a manager notices missing alerts.

pub(crate) mod state;

pub(crate) use state::StateSource;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::shutdown::Shutdown;

/// When the last poll succeeded, and how many losses wait for destinations that left the
/// config; shared between the pipeline and the server.
#[derive(Debug)]
pub(crate) struct Health {
    started_at: i64,
    last_success: AtomicI64,
    /// The last failed poll (unix seconds) and why, secrets masked.
    last_failure: std::sync::Mutex<Option<(i64, String)>>,
    max_age: AtomicI64,
    stranded: AtomicUsize,
    /// Losses held for want of routing data, and why (one line per reason).
    held: std::sync::Mutex<(usize, Vec<String>)>,
    /// Destinations whose deliveries (alerts, reports) wait after a refusal or a fault.
    refusing: std::sync::Mutex<Vec<String>>,
}

impl Health {
    pub fn new(now: i64, max_age: Duration) -> Self {
        Self {
            started_at: now,
            last_success: AtomicI64::new(0),
            last_failure: std::sync::Mutex::new(None),
            max_age: AtomicI64::new(seconds(max_age)),
            stranded: AtomicUsize::new(0),
            held: std::sync::Mutex::new((0, Vec::new())),
            refusing: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// How old the last successful poll may be (a reload that changes the schedule moves it).
    pub fn set_max_age(&self, max_age: Duration) {
        self.max_age.store(seconds(max_age), Ordering::Relaxed);
        metrics::gauge!("churn_alert_healthy_poll_age_seconds").set(seconds(max_age) as f64);
    }

    /// The gauges the stale-poll rule compares (`deploy/prometheus`): when this process
    /// started, and how old a poll may be before `/healthz` turns red.
    fn export_gauges(&self) {
        metrics::gauge!("churn_alert_started_timestamp_seconds").set(self.started_at as f64);
        metrics::gauge!("churn_alert_healthy_poll_age_seconds")
            .set(self.max_age.load(Ordering::Relaxed) as f64);
    }

    /// A poll failed: `/healthz` says so, and why, until a poll succeeds.
    pub fn poll_failed(&self, at: i64, reason: &str) {
        let reason = crate::logging::redact(reason);
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, reason));
    }

    /// Losses held for want of routing data (org chart, unknown staff or department).
    pub fn set_held(&self, losses: usize, reasons: Vec<String>) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = (losses, reasons);
        metrics::gauge!("churn_alert_losses_held").set(losses as f64);
    }

    /// Losses pending for destinations that left the config, with nowhere else to go.
    /// The destinations the last delivery pass left waiting (a refusal, a fault).
    pub fn set_refusing(&self, destinations: Vec<String>) {
        metrics::gauge!("churn_alert_refusing_destinations").set(destinations.len() as f64);
        *self.refusing.lock().unwrap_or_else(|p| p.into_inner()) = destinations;
    }

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
        let max_age = self.max_age.load(Ordering::Relaxed);
        let failure = self
            .last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some((at, reason)) = failure.filter(|(at, _)| *at >= last) {
            let since = if last == 0 {
                format!(
                    "no successful poll since start, {}s ago",
                    now - self.started_at
                )
            } else {
                format!("last successful poll {}s ago", now - last)
            };
            return Err(format!(
                "the last poll of Weiban failed ({}s ago): {reason}; {since}\n",
                now - at
            ));
        }
        if last == 0 {
            let up = now - self.started_at;
            return if up <= max_age {
                Ok(format!(
                    "starting: no poll finished yet ({up}s since start)\n"
                ))
            } else {
                Err(format!(
                    "no successful poll of Weiban in the {up}s since start (allowed: {max_age}s); see the logs\n"
                ))
            };
        }
        let age = now - last;
        let stranded = self.stranded.load(Ordering::Relaxed);
        let (held, held_reasons) = self.held.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let refusing = self
            .refusing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if age <= max_age && held > 0 {
            // Routing lacks data: nothing is lost, but nobody hears of these losses yet.
            Ok(format!(
                "degraded: {held} loss(es) held for want of routing data ({}); see `churn-alert state pending` (last successful poll {age}s ago)\n",
                held_reasons.join("; ")
            ))
        } else if age <= max_age && stranded > 0 {
            // Polling works, so the process is alive; a person still has to act.
            Ok(format!(
                "degraded: {stranded} loss(es) wait for destinations that left the config; see `churn-alert state pending` (last successful poll {age}s ago)\n"
            ))
        } else if age <= max_age && !refusing.is_empty() {
            Ok(format!(
                "degraded: {} destination(s) did not accept their deliveries (alerts or reports), which wait and are retried: {}; see `churn-alert state pending` (last successful poll {age}s ago)\n",
                refusing.len(),
                refusing.join("; ")
            ))
        } else if age <= max_age {
            Ok(format!("ok: last successful poll {age}s ago\n"))
        } else {
            Err(format!(
                "last successful poll of Weiban was {age}s ago (allowed: {max_age}s); see the logs\n"
            ))
        }
    }
}

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: PrometheusHandle,
}

/// Installs the Prometheus recorder and serves both endpoints until shutdown.
pub(crate) async fn serve(
    listen: SocketAddr,
    health: Arc<Health>,
    state: StateSource,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    // One recorder per process: a daemon run in process a second time (the tests) serves the
    // metrics the first one installed.
    static RECORDER: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    let metrics = match RECORDER.get() {
        Some(handle) => handle.clone(),
        None => {
            let handle = PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
            RECORDER.get_or_init(|| handle).clone()
        }
    };
    health.export_gauges();
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .with_state(AppState { health, metrics })
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
    match state.health.check(crate::time::unix_now()) {
        Ok(body) => (StatusCode::OK, body),
        Err(body) => (StatusCode::SERVICE_UNAVAILABLE, body),
    }
}

async fn render_metrics(State(state): State<AppState>) -> String {
    state.metrics.render()
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

    #[test]
    fn a_failed_first_poll_is_unhealthy_at_once_and_says_why() {
        let health = Health::new(1000, Duration::from_secs(900));
        assert!(health.check(1001).unwrap().starts_with("starting"));
        health.poll_failed(1002, "Weiban refused the credentials (errcode 10001)");
        let why = health.check(1003).unwrap_err();
        assert!(why.contains("errcode 10001"), "{why}");
        assert!(why.contains("no successful poll since start"), "{why}");
        health.poll_succeeded(1010);
        assert!(health.check(1011).unwrap().starts_with("ok"));
        health.poll_failed(1020, "timeout");
        let why = health.check(1021).unwrap_err();
        assert!(why.contains("last successful poll 11s ago"), "{why}");
    }

    #[test]
    fn held_losses_degrade_and_a_reload_moves_the_age_limit() {
        let health = Health::new(1000, Duration::from_secs(60));
        health.poll_succeeded(1000);
        health.set_held(2, vec!["the org chart was never read".into()]);
        let body = health.check(1001).unwrap();
        assert!(body.starts_with("degraded: 2 loss(es) held"), "{body}");
        assert!(body.contains("org chart"), "{body}");
        health.set_held(0, Vec::new());
        assert!(health.check(1100).is_err(), "100 s is over the 60 s limit");
        health.set_max_age(Duration::from_secs(3600));
        assert!(health.check(1100).unwrap().starts_with("ok"));
    }
}
