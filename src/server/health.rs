//! Health: per corp, how long ago its last poll of Weiban succeeded and what waits; and the
//! [`Roster`] of the corps a daemon serves, which `/healthz` reads and `POST /report` is
//! routed by.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::state::ReportRequest;
use crate::corp::CorpName;

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

    /// The gauges the stale-poll rule compares (`deploy/prometheus`): when this corp started
    /// being served, and how old a poll may be before `/healthz` turns red. Called in the
    /// corp's metric scope ([`super::corp_label`]).
    pub fn export_gauges(&self) {
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

/// One corp a daemon serves: its health, and its loop's inbox for `churn-alert report`.
#[derive(Clone)]
pub(crate) struct Served {
    pub health: Arc<Health>,
    pub reports: tokio::sync::mpsc::Sender<ReportRequest>,
}

/// The corps a daemon serves now (SIGHUP adds and removes them), by name.
#[derive(Default)]
pub(crate) struct Roster {
    corps: RwLock<BTreeMap<CorpName, Served>>,
}

impl Roster {
    pub fn insert(&self, corp: CorpName, served: Served) {
        self.write().insert(corp, served);
    }

    pub fn remove(&self, corp: &CorpName) {
        self.write().remove(corp);
    }

    pub fn get(&self, corp: &CorpName) -> Option<Served> {
        self.read().get(corp).cloned()
    }

    pub fn names(&self) -> Vec<CorpName> {
        self.read().keys().cloned().collect()
    }

    /// `/healthz`: `Ok` when every corp is healthy, or when it serves none. A daemon of the one corp `default` says
    /// what it always said; with several, each corp has a line that starts with its name,
    /// the failing ones first.
    pub fn check(&self, now: i64) -> Result<String, String> {
        let corps = self.read();
        if let [(corp, served)] = corps.iter().collect::<Vec<_>>().as_slice() {
            if corp.is_default() {
                return served.health.check(now);
            }
        }
        if corps.is_empty() {
            // A shard the hash gave no corp (yet) is idle, not broken: restarting it would not
            // help, and SIGHUP may bring it a corp.
            return Ok(
                "ok: this daemon serves no corp (no corp of the config falls in its `--shard`)\n"
                    .into(),
            );
        }
        let mut failing_corps = Vec::new();
        let mut failing = Vec::new();
        let mut fine = Vec::new();
        for (corp, served) in corps.iter() {
            match served.health.check(now) {
                Ok(line) => fine.push(format!("corp {corp}: {line}")),
                Err(line) => {
                    failing_corps.push(corp.as_str());
                    failing.push(format!("corp {corp}: failing: {line}"));
                }
            }
        }
        let body = failing.iter().chain(&fine).cloned().collect::<String>();
        if failing_corps.is_empty() {
            Ok(body)
        } else {
            Err(format!(
                "failing corps: {}\n{body}",
                failing_corps.join(", ")
            ))
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<CorpName, Served>> {
        self.corps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<CorpName, Served>> {
        self.corps.write().unwrap_or_else(|p| p.into_inner())
    }
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

    fn served(health: Health) -> Served {
        let (reports, _) = tokio::sync::mpsc::channel(1);
        Served {
            health: Arc::new(health),
            reports,
        }
    }

    #[test]
    fn one_default_corp_answers_as_before_and_several_name_the_failing_one() {
        let roster = Roster::default();
        let health = Health::new(1000, Duration::from_secs(60));
        health.poll_succeeded(1000);
        roster.insert(CorpName::default_corp(), served(health));
        assert_eq!(
            roster.check(1001).unwrap(),
            "ok: last successful poll 1s ago\n"
        );

        let roster = Roster::default();
        let good = Health::new(1000, Duration::from_secs(60));
        good.poll_succeeded(1000);
        let bad = Health::new(1000, Duration::from_secs(60));
        bad.poll_failed(1000, "Weiban answered HTTP 502");
        roster.insert("acme".parse().unwrap(), served(good));
        roster.insert("globex".parse().unwrap(), served(bad));
        let body = roster.check(1001).unwrap_err();
        assert!(body.starts_with("failing corps: globex\n"), "{body}");
        assert!(
            body.contains("corp globex: failing: the last poll of Weiban failed"),
            "{body}"
        );
        assert!(body.contains("corp acme: ok"), "{body}");
        roster.remove(&"globex".parse().unwrap());
        assert!(roster.check(1001).unwrap().starts_with("corp acme: ok"));
        roster.remove(&"acme".parse().unwrap());
        assert!(roster.check(1001).unwrap().contains("serves no corp"));
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
