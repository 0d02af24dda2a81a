//! Enrichment of new losses before they are recorded: the staff member's departments and
//! whether they left (from the org chart), and which colleagues still follow the customer
//! (one `external_user/get` per new loss).
//!
//! [`OrgChart`] holds the last good org chart: loaded from the store at start, read again
//! from Weiban when due (`directory.refresh`) or when a loss names a staff member it does not
//! know, and saved back; a failed read keeps the copy it has. Lookups never delay an alert for
//! long nor stop one: they are skipped in a storm (more new losses than
//! `directory.lookups_per_poll`), time out after a few seconds, and a failure only leaves the
//! mark out.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::Config;
use crate::directory::Directory;
use crate::loss::Loss;
use crate::source::WeibanClient;
use crate::store::Store;

/// How long one customer lookup may take before the alert goes without its mark.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The org chart as the pipeline knows it.
pub(crate) struct OrgChart {
    store: Store,
    current: RwLock<Option<Arc<Directory>>>,
    /// Whether any route needs it; otherwise it is never read.
    needed: bool,
    refresh: i64,
    /// How long after a failed read the next one waits: at most the schedule's interval, so
    /// that held losses are routed as soon as Weiban answers again.
    retry_wait: i64,
    /// After a failed read, the next one waits until then (unix seconds).
    retry_after: std::sync::atomic::AtomicI64,
}

/// How long a read of the org chart may take, and how long after a failed one the next waits.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const RETRY_AFTER_FAILURE: i64 = 600;

impl OrgChart {
    pub fn new(config: &Config, store: Store) -> Self {
        let saved = store.directory().unwrap_or_else(|e| {
            tracing::warn!(
                "the saved staff directory cannot be read ({e}); it is read again from Weiban"
            );
            None
        });
        Self {
            store,
            current: RwLock::new(saved.map(Arc::new)),
            // Departments, and staff mailboxes (Weiban's staff list knows more addresses than
            // the outflow items carry).
            needed: config.uses_departments() || config.routes.iter().any(|r| r.email_staff),
            refresh: i64::try_from(config.directory.refresh.as_secs()).unwrap_or(86_400),
            retry_wait: config
                .schedule()
                .interval()
                .and_then(|i| i64::try_from(i.as_secs()).ok())
                .unwrap_or(RETRY_AFTER_FAILURE)
                .clamp(1, RETRY_AFTER_FAILURE),
            retry_after: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// The last good org chart, if any.
    /// A routing snapshot of `config` with the org chart as read now.
    pub fn routing<'a>(&self, config: &'a crate::config::Config) -> super::Routing<'a> {
        super::Routing::new(config, self.current())
    }

    pub fn current(&self) -> Option<Arc<Directory>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the org chart again when it is due (or `force`d); on failure keeps what it has.
    pub async fn refresh(&self, weiban: &WeibanClient, now: i64, force: bool) {
        if !self.needed {
            return;
        }
        let due = self
            .current()
            .is_none_or(|d| now - d.fetched_at >= self.refresh);
        let backing_off = now < self.retry_after.load(std::sync::atomic::Ordering::Relaxed);
        if !(due || force) || backing_off {
            return;
        }
        let read = tokio::time::timeout(READ_TIMEOUT, weiban.directory(now))
            .await
            .unwrap_or_else(|_| {
                Err(crate::source::WeibanError::Transport {
                    endpoint: "staff/list",
                    reason: format!("reading the directory took longer than {READ_TIMEOUT:?}"),
                })
            });
        match read {
            Ok(directory) => {
                tracing::info!(
                    staff = directory.staff.len(),
                    departments = directory.departments.len(),
                    "read the staff directory from Weiban"
                );
                if let Err(e) = self.store.save_directory(&directory).await {
                    tracing::warn!("the staff directory could not be saved: {e}");
                }
                *self.current.write().unwrap_or_else(|p| p.into_inner()) =
                    Some(Arc::new(directory));
            }
            Err(e) => {
                self.retry_after
                    .store(now + self.retry_wait, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                "the staff directory could not be read ({e}); routing uses the last good copy{}",
                if self.current().is_some() {
                    ""
                } else {
                    " (none yet: losses of routes that route by department are held, see `state pending`)"
                }
)
            }
        }
    }
}

/// Marks each loss with its staff member's department paths and whether they left.
pub(crate) fn departments(losses: &mut [Loss], directory: Option<&Directory>) {
    let Some(directory) = directory else {
        return;
    };
    for loss in losses {
        loss.departments = directory.paths_of(&loss.staff_id);
        let member = directory.staff.get(&loss.staff_id);
        loss.staff_left = member.is_some_and(|s| s.has_left());
        if loss.staff_email.is_none() {
            loss.staff_email = member.and_then(|s| s.email.clone());
        }
    }
}

/// Looks each loss's customer up (at most `budget` of them, none if there are more) and
/// marks who else still follows them.
pub(crate) async fn still_followed(losses: &mut [Loss], weiban: &WeibanClient, budget: &mut usize) {
    if losses.len() > *budget {
        if !losses.is_empty() {
            tracing::info!(
                losses = losses.len(),
                "many new losses at once: customer lookups (still followed by a colleague) skipped"
            );
        }
        *budget = 0;
        return;
    }
    *budget -= losses.len();
    for loss in losses {
        match tokio::time::timeout(LOOKUP_TIMEOUT, weiban.followers(&loss.customer_id)).await {
            Ok(Ok(followers)) => {
                loss.still_followed_by = followers
                    .into_iter()
                    .filter(|(id, _)| *id != loss.staff_id)
                    .map(|(_, name)| name)
                    .collect();
            }
            Ok(Err(e)) => {
                metrics::counter!("churn_alert_lookup_failures_total").increment(1);
                tracing::debug!("customer lookup failed, alert goes without the mark: {e}");
            }
            Err(_) => {
                metrics::counter!("churn_alert_lookup_failures_total").increment(1);
                tracing::debug!("customer lookup timed out, alert goes without the mark");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WeibanConfig;
    use crate::secret::Secret;
    use churn_alert_sim::{WeibanSim, WeibanSimOptions};

    async fn client() -> (WeibanSim, WeibanClient) {
        let sim = WeibanSim::start(WeibanSimOptions::default()).await.unwrap();
        let config = WeibanConfig {
            base_url: sim.base_url(),
            corp_id: "sim-corp".into(),
            secret: Secret::new("sim-secret"),
            ..WeibanConfig::default()
        };
        let client = WeibanClient::new(&config).unwrap();
        (sim, client)
    }

    #[test]
    fn departments_mark_paths_and_who_left_and_leave_strangers_alone() {
        use crate::directory::{Department, Directory, StaffMember};
        let department = |id, name: &str, parent| Department {
            id,
            name: name.into(),
            parent,
            order: id,
        };
        let member = |id: &str, status| StaffMember {
            id: id.into(),
            name: id.into(),
            email: Some(format!("{id}@example.com")),
            status,
            departments: vec![2],
        };
        let directory = Directory::new(
            vec![department(1, "公司", 0), department(2, "销售一部", 1)],
            vec![member("zhang", 1), member("li", 4)],
            100,
        );
        let mut losses = vec![
            Loss::sample("c1", "zhang", 100),
            Loss::sample("c2", "li", 100),
            Loss::sample("c3", "stranger", 100),
        ];
        departments(&mut losses, Some(&directory));
        assert_eq!(losses[0].departments, ["销售一部"]);
        assert_eq!(losses[0].staff_email.as_deref(), Some("zhang@example.com"));
        assert!(
            !losses[0].staff_left && losses[1].staff_left,
            "status 4 left"
        );
        assert!(losses[2].departments.is_empty() && !losses[2].staff_left);
        departments(&mut losses[..1], None);
        assert_eq!(
            losses[0].departments,
            ["销售一部"],
            "no org chart changes nothing"
        );
    }

    #[tokio::test]
    async fn still_followed_names_colleagues_never_the_staff_member_who_lost_the_customer() {
        let (sim, weiban) = client().await;
        sim.set_followers("c1", &[("zhang", "张三"), ("li", "李四")]);
        let mut losses = vec![
            Loss::sample("c1", "zhang", 100),
            Loss::sample("c2", "zhang", 100),
        ];
        let mut budget = 5;
        still_followed(&mut losses, &weiban, &mut budget).await;
        assert_eq!(losses[0].still_followed_by, ["李四"]);
        assert!(losses[1].still_followed_by.is_empty());
        assert_eq!(budget, 3, "one lookup per loss");
    }

    #[tokio::test]
    async fn more_losses_than_the_budget_are_not_looked_up_at_all() {
        let (sim, weiban) = client().await;
        sim.set_followers("c1", &[("li", "李四")]);
        let mut losses = vec![
            Loss::sample("c1", "zhang", 100),
            Loss::sample("c2", "zhang", 100),
        ];
        let mut budget = 1;
        still_followed(&mut losses, &weiban, &mut budget).await;
        assert!(losses.iter().all(|l| l.still_followed_by.is_empty()));
        assert_eq!(budget, 0);
        assert_eq!(
            sim.directory_requests()
                .get("external_user/get")
                .copied()
                .unwrap_or(0),
            0,
            "no request made"
        );
    }
}
