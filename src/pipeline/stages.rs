//! The poll's stages, applied to each page of a window as it arrives: dedup → enrich
//! (departments) → still-followed lookups → route; then, a group of pages at a time (about 300
//! losses), count deletions → record.
//!
//! Each stage is a small function of its input and what it needs (the store, the directory,
//! the router), testable on its own; [`PageStages`] holds what one window's pages share (one
//! router built from the org chart once, the lookup budget, whether a stranger was seen) and
//! runs them in order. The dry run ([`super::Pipeline::plan`]) runs the same stages and stops
//! before recording, so that it names the destinations the real poll would.
//!
//! Each stage says what becomes of a loss it does not pass on: dedup drops what the store
//! remembers (reported before) or what is older than the retention (never reported, by
//! design and documented); route decides queued, filtered (counted) or held (kept with its
//! reason) for every loss, never nothing.

use std::collections::{BTreeMap, HashSet};

use crate::zone::Zone;

use crate::directory::Directory;
use crate::loss::{DeleteBy, Loss, LossKey};
use crate::source::WeibanClient;
use crate::store::ledger::StaffDelete;
use crate::store::{Recorded, Store, StoreError};
use crate::transform::enrich;
use crate::transform::Router;

/// How a page's losses end: recorded (queued or held), remembered only (`--mark-only`), or
/// only planned (a dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Record,
    MarkOnly,
    Plan,
}

/// What one window's pages share.
pub(crate) struct PageStages<'a> {
    pub store: &'a Store,
    pub weiban: &'a WeibanClient,
    pub directory: Option<&'a Directory>,
    pub router: Router<'a>,
    pub cutoff: i64,
    pub tz: Zone,
    pub outcome: Outcome,
    /// Whether a route alerts on staff deletions (then they are counted).
    pub counts_deletions: bool,
    /// Customer lookups left for this window (only the first page gets any).
    pub lookups: usize,
    /// A loss's staff member is unknown to the org chart: read it again after the window.
    pub strangers: bool,
    /// Keys already passed on in this window (a dry run has no store writes to dedup on).
    passed: HashSet<LossKey>,
}

impl<'a> PageStages<'a> {
    pub fn new(
        store: &'a Store,
        weiban: &'a WeibanClient,
        directory: Option<&'a Directory>,
        router: Router<'a>,
        cutoff: i64,
        tz: Zone,
        outcome: Outcome,
    ) -> Self {
        let config = router.config();
        let lookups = if config.directory.still_followed && outcome != Outcome::MarkOnly {
            config.directory.lookups_per_poll
        } else {
            0
        };
        let counts_deletions =
            outcome == Outcome::Record && config.routes.iter().any(|r| r.staff_delete_alert > 0);
        Self {
            store,
            weiban,
            directory,
            router,
            cutoff,
            tz,
            outcome,
            counts_deletions,
            lookups,
            strangers: false,
            passed: HashSet::new(),
        }
    }

    /// Runs the stages up to routing on one page: the page's new losses, each with what
    /// routing decided. Counts and records nothing ([`PageStages::count_deletions`] and the
    /// store's recording come once per group of pages).
    pub async fn decide(&mut self, page: Vec<Loss>) -> Result<Vec<Recorded>, StoreError> {
        let mut fresh = dedup(self.store, page, self.cutoff, &mut self.passed)?;
        self.strangers |= self
            .directory
            .is_some_and(|d| fresh.iter().any(|l| !d.knows(&l.staff_id)));
        enrich::departments(&mut fresh, self.directory);
        // Only the first page is looked up: later pages come while others are in flight and
        // hold the request slots, where a lookup would only time out.
        enrich::still_followed(&mut fresh, self.weiban, &mut self.lookups).await;
        self.lookups = 0;
        Ok(route(
            &self.router,
            fresh,
            self.outcome == Outcome::MarkOnly,
        ))
    }

    /// Counts the staff deletions of a group of decided losses, when a route alerts on them:
    /// right before the group is recorded, so that a crash in between counts a loss twice at
    /// worst (the group is fetched again), and a group costs one flush, not one per page.
    pub async fn count_deletions(&self, group: &[Recorded]) -> Result<(), StoreError> {
        if !self.counts_deletions {
            return Ok(());
        }
        count_deletions(self.store, group.iter().map(|(loss, _, _)| loss), self.tz).await
    }
}

/// Dedup: the page's losses that are new. Dropped: losses older than `cutoff` (the retention:
/// the store has forgotten them, so they must not come back), losses the store remembers
/// (reported already), and repeats within this window (`passed`).
pub(crate) fn dedup(
    store: &Store,
    page: Vec<Loss>,
    cutoff: i64,
    passed: &mut HashSet<LossKey>,
) -> Result<Vec<Loss>, StoreError> {
    let page: Vec<Loss> = page
        .into_iter()
        .filter(|l| l.outflow_at >= cutoff)
        .collect();
    let seen = store.seen_of(&page)?;
    Ok(page
        .into_iter()
        .zip(seen)
        .filter(|(loss, seen)| !seen && passed.insert(loss.key()))
        .map(|(loss, _)| loss)
        .collect())
}

/// Count deletions: staff deletions per day and staff member, for `staff_delete_alert`,
/// counted before the losses are recorded as seen, so that a crash in between can count a
/// loss twice, never miss it.
pub(crate) async fn count_deletions<'l>(
    store: &Store,
    fresh: impl IntoIterator<Item = &'l Loss>,
    tz: Zone,
) -> Result<(), StoreError> {
    let mut by_day: BTreeMap<String, Vec<StaffDelete<'_>>> = BTreeMap::new();
    for loss in fresh {
        if matches!(loss.delete_by, DeleteBy::Staff | DeleteBy::Both) {
            let day = crate::time::date_of(loss.outflow_at, tz).to_string();
            by_day.entry(day).or_default().push(StaffDelete {
                staff_id: &loss.staff_id,
                staff_name: &loss.staff_name,
                departments: &loss.departments,
                customer: loss.display_remark().unwrap_or(&loss.customer_name),
            });
        }
    }
    for (day, deletes) in by_day {
        store.count_deletes(&day, &deletes).await?;
    }
    Ok(())
}

/// Route: what every route does with each loss (queued, filtered or held; filters counted).
/// `mark_only` remembers losses as reported, on the operator's word, with no destination.
pub(crate) fn route(router: &Router<'_>, fresh: Vec<Loss>, mark_only: bool) -> Vec<Recorded> {
    fresh
        .into_iter()
        .map(|loss| {
            if mark_only {
                return (loss, Vec::new(), Vec::new());
            }
            let routed = router.route_loss(&loss);
            for (route, reason) in &routed.filtered {
                metrics::counter!("churn_alert_losses_filtered_total", "route" => route.clone(), "reason" => *reason)
                    .increment(1);
            }
            (loss, routed.destinations, routed.held)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn config(routes: &str) -> Config {
        let text = format!(
            "[weiban]\ncorp_id = \"c\"\nsecret = \"s\"\n[schedule]\ncron = \"* * * * *\"\n{routes}"
        );
        Config::from_toml(&text, Path::new("t.toml"), &|_| None).unwrap()
    }

    const ROUTES: &str = r#"
[[route]]
name = "care"
audience = "managers"
delete_by = ["customer"]
wecom_webhooks = ["http://h/send?key=care"]
staff_delete_alert = 2
[[route]]
name = "team"
audience = "managers"
departments = ["销售一部"]
wecom_webhooks = ["http://h/send?key=team"]
"#;

    fn loss(customer: &str, staff: &str, at: i64, by: DeleteBy) -> Loss {
        Loss {
            delete_by: by,
            ..Loss::sample(customer, staff, at)
        }
    }

    async fn remembered(store: &Store, losses: &[Loss]) {
        let batch: Vec<Recorded> = losses
            .iter()
            .map(|l| (l.clone(), Vec::new(), Vec::new()))
            .collect();
        store.record_routed(&batch, 100, |_| 100).await.unwrap();
    }

    #[tokio::test]
    async fn dedup_passes_only_new_losses_within_the_retention_once() {
        let store = Store::temporary().unwrap();
        let seen = loss("seen", "zhang", 1_000, DeleteBy::Customer);
        remembered(&store, std::slice::from_ref(&seen)).await;
        let old = loss("old", "zhang", 10, DeleteBy::Customer);
        let new = loss("new", "zhang", 1_000, DeleteBy::Customer);
        let mut passed = HashSet::new();
        let page = vec![seen, old, new.clone(), new.clone()];
        let fresh = dedup(&store, page, 500, &mut passed).unwrap();
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].customer_id, new.customer_id);
        let again = dedup(&store, vec![new], 500, &mut passed).unwrap();
        assert!(again.is_empty(), "a repeat within the window passes once");
    }

    #[tokio::test]
    async fn deletions_by_staff_are_counted_per_day_and_staff_member() {
        let store = Store::temporary().unwrap();
        let tz = crate::zone::Zone::shanghai();
        // 2026-11-25 12:00 +08:00, and the next day.
        let day = 1_795_579_200;
        let fresh = [
            loss("a", "zhang", day, DeleteBy::Staff),
            loss("b", "zhang", day + 60, DeleteBy::Both),
            loss("c", "zhang", day + 120, DeleteBy::Customer),
            loss("d", "zhang", day + 86_400, DeleteBy::Staff),
        ];
        count_deletions(&store, &fresh, tz).await.unwrap();
        let counts = store.deletes_on("2026-11-25").unwrap();
        assert_eq!(counts.len(), 1);
        assert_eq!(
            counts[0].1.count, 2,
            "the customer's own deletion is not counted"
        );
        assert_eq!(store.deletes_on("2026-11-26").unwrap()[0].1.count, 1);
    }

    #[test]
    fn routing_queues_filters_or_holds_every_loss_and_mark_only_queues_nothing() {
        let config = config(ROUTES);
        // No org chart: the department route cannot decide, and holds.
        let router = Router::new(&config);
        let decided = route(
            &router,
            vec![
                loss("c1", "zhang", 1_000, DeleteBy::Customer),
                loss("c2", "zhang", 1_000, DeleteBy::Staff),
            ],
            false,
        );
        let care = crate::destination::DestinationId::robot("care", "http://h/send?key=care");
        assert_eq!(decided[0].1, [care]);
        assert_eq!(
            decided[0].2.len(),
            1,
            "held by `team` for want of the org chart"
        );
        assert!(decided[1].1.is_empty(), "`care` filters a staff deletion");
        assert_eq!(decided[1].2[0].0, "team");
        let marked = route(
            &router,
            vec![loss("c3", "zhang", 1_000, DeleteBy::Customer)],
            true,
        );
        assert!(marked[0].1.is_empty() && marked[0].2.is_empty());
    }

    #[tokio::test]
    async fn the_stages_decide_a_page_and_count_deletions_only_when_recording() {
        let config = config(ROUTES);
        let store = Store::temporary().unwrap();
        let weiban = WeibanClient::new(&config.weiban).unwrap();
        let department = |id, name: &str, parent| crate::directory::Department {
            id,
            name: name.into(),
            parent,
            order: id,
        };
        let zhang = crate::directory::StaffMember {
            id: "zhang".into(),
            name: "张三".into(),
            email: None,
            status: 1,
            departments: vec![2],
        };
        let directory = Directory::new(
            vec![department(1, "公司", 0), department(2, "销售一部", 1)],
            vec![zhang],
            100,
        );
        let page = vec![
            loss("c1", "zhang", 1_795_579_200, DeleteBy::Staff),
            loss("c2", "stranger", 1_795_579_200, DeleteBy::Customer),
        ];
        let tz = crate::zone::Zone::shanghai();
        let router = Router::with_directory(&config, Some(&directory));
        let mut plan = PageStages::new(
            &store,
            &weiban,
            Some(&directory),
            router,
            0,
            tz,
            Outcome::Plan,
        );
        plan.lookups = 0;
        let planned = plan.decide(page.clone()).await.unwrap();
        assert_eq!(planned.len(), 2);
        assert!(plan.strangers, "a staff member the org chart does not know");
        assert!(
            store.deletes_on("2026-11-25").unwrap().is_empty(),
            "a plan counts nothing"
        );

        let router = Router::with_directory(&config, Some(&directory));
        let mut record = PageStages::new(
            &store,
            &weiban,
            Some(&directory),
            router,
            0,
            tz,
            Outcome::Record,
        );
        record.lookups = 0;
        let decided = record.decide(page).await.unwrap();
        let ids = |batch: &[Recorded]| {
            batch
                .iter()
                .map(|(loss, to, held)| (loss.key(), to.clone(), held.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(&decided),
            ids(&planned),
            "a plan decides what the poll decides"
        );
        assert!(
            store.deletes_on("2026-11-25").unwrap().is_empty(),
            "deciding counts nothing: a group is counted right before it is recorded"
        );
        plan.count_deletions(&planned).await.unwrap();
        assert!(
            store.deletes_on("2026-11-25").unwrap().is_empty(),
            "a plan counts nothing"
        );
        record.count_deletions(&decided).await.unwrap();
        assert_eq!(store.deletes_on("2026-11-25").unwrap()[0].1.count, 1);
    }
}
