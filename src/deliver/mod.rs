//! Delivery: from the outbox to the sinks, as a chain of small stages.
//!
//! For every destination with pending losses or [`prepared`] messages (reports and
//! staff-deletion alerts, queued by their producers): resolve its id against the config (or
//! [`reroute`] what waits for a destination that left it) → [`gate`] (quiet hours, retry
//! time; prepared messages are not held by quiet hours) → compose for the destination's sink,
//! at the sink's byte limit → [`attempt`] (send in
//! order, complete after each accepted message) → on a refusal, the [`policy`] says when to
//! try again. Destinations are delivered concurrently; each one's trouble is its own.

pub(crate) mod attempt;
pub(crate) mod gate;
pub(crate) mod policy;
pub(crate) mod prepared;
pub(crate) mod release;
pub(crate) mod reroute;

use std::ops::ControlFlow;
use std::time::Duration;

use crate::zone::Zone;
use futures::future::join_all;

use crate::config::Config;
use crate::destination::DestinationId;
use crate::render::compose::{compose, ComposeError, Composed, Queued};
use crate::render::Renderer;
use crate::schedule::QuietHours;
use crate::shutdown::Shutdown;
use crate::sink::{SendError, Sinks};
use crate::store::{DeliveryStatus, DestinationState, Store, StoreError};
use crate::transform::route::Target;
use crate::transform::{Destination, Router};
use attempt::{Attempt, Stop};
use gate::Gate;

/// Most losses rendered for one robot at a time. A batch's losses, rendered entries and
/// messages are the largest thing in memory while delivering (about 2 KB per loss): 2 000
/// made the peak of a 10 000-loss run 19.3 MB, 500 made it 16.0 (BENCHMARKS.md, sixth pass),
/// for one more digest per 500 losses (a group cut at a batch's end continues in the next
/// digest, and storm protection judges each part on its own).
const ROBOT_BATCH: usize = 500;

/// Most losses in one email: a batch is one email, and a manager would rather read one long
/// list than four short ones. A route with email therefore peaks about as before.
const EMAIL_BATCH: usize = 2000;

/// What one delivery pass did.
#[derive(Debug, Default)]
pub(crate) struct DeliveryReport {
    pub messages_sent: usize,
    pub losses_delivered: usize,
    /// Destinations left with pending losses, and why.
    pub waiting: Vec<(String, String)>,
    /// Losses pending for destinations that left the config with nowhere to move them.
    pub stranded: usize,
    /// Earliest time (unix seconds) a waiting destination may be tried again.
    pub next_retry_at: Option<i64>,
    /// Deliveries held for quiet hours (not a failure: they go out when the hours end).
    pub held: usize,
    /// Losses held for want of routing data ([`release`]), and why.
    pub on_hold: release::StillHeld,
    /// Destinations in the config that did not accept what waits for them (a refusal, a
    /// fault, a template that fails), for `/healthz`.
    pub refusing: Vec<String>,
}

impl DeliveryReport {
    pub fn all_delivered(&self) -> bool {
        self.waiting.is_empty()
    }

    fn retry_at(&mut self, at: i64) {
        self.next_retry_at = Some(self.next_retry_at.map_or(at, |t| t.min(at)));
    }
}

/// Why refused prepared messages wait, for the delivery report.
fn refused_reason(
    destination: &Destination<'_>,
    count: usize,
    first: &crate::store::Prepared,
) -> String {
    format!(
        "{count} report or alert message(s) refused, e.g. {} ({}): {}; fix it, then `churn-alert state retry --route {}`",
        first.what,
        first.label,
        first.refused.as_deref().unwrap_or_default(),
        destination.route.name
    )
}

/// What happened at one destination.
#[derive(Debug, Default)]
struct Outcome {
    messages_sent: usize,
    losses_delivered: usize,
    waiting: Option<String>,
    retry_at: Option<i64>,
    held: usize,
}

/// Everything delivery needs, built once from the config.
pub(crate) struct Delivery {
    pub store: Store,
    pub renderer: Renderer,
    pub sinks: Sinks,
    pub quiet_hours: Option<QuietHours>,
    pub tz: Zone,
    pub blocked_wait: Duration,
    /// The org chart, for department destinations named by department name.
    pub org: std::sync::Arc<crate::transform::enrich::OrgChart>,
}

impl Delivery {
    /// Sends what is pending, every destination concurrently.
    pub async fn deliver(
        &self,
        config: &Config,
        now: i64,
        shutdown: &Shutdown,
    ) -> Result<DeliveryReport, StoreError> {
        let mut report = DeliveryReport::default();
        let routing = self.org.routing(config);
        let router = routing.router();
        report.on_hold = release::release_all(&self.store, config, &router, now).await?;
        let mut jobs = Vec::new();
        for (id, count) in self.store.pending_counts()? {
            match router.get(&id) {
                Some(destination) => jobs.push(async move {
                    let outcome = self.deliver_to(&destination, now, shutdown).await;
                    (destination.describe(), outcome)
                }),
                None => self.reroute(&id, count, &router, now, &mut report).await?,
            }
        }
        for (described, outcome) in join_all(jobs).await {
            // One destination's trouble (a store record it cannot read) is its own: the
            // others deliver, and the cycle still polls.
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(destination = %described, "delivery failed: {e}");
                    report.refusing.push(described.clone());
                    report.waiting.push((described, e.to_string()));
                    continue;
                }
            };
            report.messages_sent += outcome.messages_sent;
            report.losses_delivered += outcome.losses_delivered;
            report.held += outcome.held;
            if let Some(reason) = outcome.waiting {
                if !shutdown.is_shutdown() {
                    report.refusing.push(described.clone());
                }
                report.waiting.push((described, reason));
            }
            if let Some(at) = outcome.retry_at {
                report.retry_at(at);
            }
        }
        if report.held > 0 {
            tracing::info!(
                held = report.held,
                "quiet hours: deliveries held until they end"
            );
        }
        Ok(report)
    }

    /// Sends what waits for `ids` only (a report run on demand): the same stages as
    /// [`Self::deliver`], for those destinations.
    pub async fn deliver_some(
        &self,
        config: &Config,
        ids: &[DestinationId],
        now: i64,
        shutdown: &Shutdown,
    ) -> Result<DeliveryReport, StoreError> {
        let routing = self.org.routing(config);
        let router = routing.router();
        let mut report = DeliveryReport::default();
        for destination in ids.iter().filter_map(|id| router.get(id)) {
            let outcome = self.deliver_to(&destination, now, shutdown).await?;
            report.messages_sent += outcome.messages_sent;
            if let Some(reason) = outcome.waiting {
                report.waiting.push((destination.describe(), reason));
            }
        }
        Ok(report)
    }

    /// One destination: gate, then its prepared messages, then its losses.
    async fn deliver_to(
        &self,
        destination: &Destination<'_>,
        now: i64,
        shutdown: &Shutdown,
    ) -> Result<Outcome, StoreError> {
        let id = &destination.id;
        let mut outcome = Outcome::default();
        let mut state = self.store.destination_state(id)?;
        let held_until = match gate::gate(
            &destination.route.name,
            state.as_ref(),
            destination.fingerprint(),
            self.quiet_until(now),
            now,
        ) {
            Gate::Open => None,
            Gate::Held { until } => Some(until),
            Gate::Wait { reason, retry_at } => {
                outcome.waiting = Some(reason);
                outcome.retry_at = retry_at;
                return Ok(outcome);
            }
        };
        let quiet_until = || self.quiet_until(crate::time::unix_now());
        let attempt = Attempt {
            store: &self.store,
            id,
            shutdown,
            quiet_until: &quiet_until,
        };
        outcome = match self
            .send_prepared(destination, &attempt, &mut state, outcome)
            .await?
        {
            ControlFlow::Continue(outcome) => outcome,
            ControlFlow::Break(outcome) => return Ok(outcome),
        };
        if let Some(until) = held_until {
            outcome.held = self.store.pending_count(id);
            outcome.retry_at = Some(until);
            return Ok(outcome);
        }
        self.send_losses(destination, &attempt, state, outcome)
            .await
    }

    /// Prepared messages (reports, staff-deletion alerts) go first: quiet hours do not hold
    /// them, and they are few. A message the destination rejects for good (a file or picture
    /// it will not take: [`SendError::Rejected`]) is marked refused, visibly, and the
    /// destination's alerts on losses still go out; any other failure (the robot is gone, it is
    /// blocked, a fault) ends the destination's pass. Breaks when the pass ends here.
    async fn send_prepared(
        &self,
        destination: &Destination<'_>,
        attempt: &Attempt<'_>,
        state: &mut Option<DestinationState>,
        mut outcome: Outcome,
    ) -> Result<ControlFlow<Outcome, Outcome>, StoreError> {
        let (refused, waiting): (Vec<_>, Vec<_>) = self
            .store
            .prepared_for(&destination.id)?
            .into_iter()
            .partition(|(_, m)| m.refused.is_some());
        if let Some((_, first)) = refused.first() {
            outcome.waiting = Some(refused_reason(destination, refused.len(), first));
        }
        if waiting.is_empty() {
            return Ok(ControlFlow::Continue(outcome));
        }
        let keys: Vec<Vec<u8>> = waiting.iter().map(|(key, _)| key.clone()).collect();
        let sent = match prepared::compose(&self.sinks, destination, waiting) {
            Ok(Composed::Wecom(sink, messages)) => attempt.run(sink, messages).await?,
            Ok(Composed::Email(sink, messages)) => attempt.run(sink, messages).await?,
            Err(err) => {
                let outcome = self
                    .failed(destination, outcome, state.as_ref(), err)
                    .await?;
                return Ok(ControlFlow::Break(outcome));
            }
        };
        outcome.messages_sent += sent.messages;
        if sent.messages > 0 && state.take().is_some() {
            self.store.clear_destination_state(&destination.id).await?;
        }
        match sent.stop {
            Stop::Done | Stop::Quiet { .. } => Ok(ControlFlow::Continue(outcome)),
            Stop::Shutdown => {
                outcome.waiting = Some("shutting down".into());
                Ok(ControlFlow::Break(outcome))
            }
            Stop::Failed(SendError::Rejected { reason }) => {
                if let Some(key) = keys.get(sent.messages) {
                    self.store.refuse_prepared(key, &reason).await?;
                }
                tracing::error!(destination = %destination.describe(), "a report or alert message was refused: {reason}; it stays pending (`churn-alert state pending`) until `churn-alert state retry --route {}`; the destination's other deliveries go on", destination.route.name);
                outcome.waiting = Some(format!("a report or alert message was refused: {reason}"));
                Ok(ControlFlow::Continue(outcome))
            }
            Stop::Failed(err) => {
                let outcome = self
                    .failed(destination, outcome, state.as_ref(), err)
                    .await?;
                Ok(ControlFlow::Break(outcome))
            }
        }
    }

    /// The destination's losses: compose and attempt a batch at a time.
    async fn send_losses(
        &self,
        destination: &Destination<'_>,
        attempt: &Attempt<'_>,
        mut state: Option<DestinationState>,
        mut outcome: Outcome,
    ) -> Result<Outcome, StoreError> {
        let id = &destination.id;
        let limit = match destination.target {
            Target::Email { .. } => EMAIL_BATCH,
            Target::Wecom { .. } => ROBOT_BATCH,
        };
        // A batch at a time, so that a huge backlog (a backfill, a long outage) never sits in
        // memory whole; delivered losses leave the outbox, so each read starts with what is due.
        loop {
            let pending = self.store.pending_batch(id, limit)?;
            if pending.is_empty() {
                break;
            }
            let whole_batch = pending.len() == limit;
            let queued = Queued::from(pending);
            let sent = match compose(&self.renderer, &self.sinks, destination, &queued) {
                Ok(Composed::Wecom(sink, messages)) => attempt.run(sink, messages).await?,
                Ok(Composed::Email(sink, messages)) => attempt.run(sink, messages).await?,
                // A staff member without an address: their losses reach the route's other
                // destinations (its robots) but not this mailbox, so skip them here, visibly.
                Err(ComposeError::NoAddress { staff, route }) => {
                    let robots = !destination.route.wecom_webhooks.is_empty()
                        || !destination.route.department_webhooks.is_empty()
                        || destination.route.staff_webhooks.contains_key(&staff);
                    self.skip(id, &queued.losses, &staff, &route, robots, state.as_ref())
                        .await?;
                    outcome.waiting = None;
                    break;
                }
                // A template that fails on this data: waits for a person, visible in
                // `state pending`.
                Err(e) => {
                    let err = SendError::Permanent {
                        reason: e.to_string(),
                    };
                    return self.failed(destination, outcome, state.as_ref(), err).await;
                }
            };
            outcome.messages_sent += sent.messages;
            outcome.losses_delivered += sent.losses;
            if sent.messages > 0 && state.take().is_some() {
                // It takes messages again: a later fault starts a new streak.
                self.store.clear_destination_state(id).await?;
            }
            match sent.stop {
                Stop::Done if whole_batch => continue,
                Stop::Done => break,
                Stop::Shutdown => {
                    outcome.waiting = Some("shutting down".into());
                    break;
                }
                Stop::Quiet { until } => {
                    outcome.retry_at = Some(until);
                    outcome.held = self.store.pending_count(id);
                    tracing::info!(destination = %id, held = outcome.held, "quiet hours began while sending: the rest is held until they end");
                    break;
                }
                Stop::Failed(err) => {
                    return self.failed(destination, outcome, state.as_ref(), err).await;
                }
            }
        }
        Ok(outcome)
    }

    /// Drops `pending` from a staff mailbox that has no address, with a warning, a metric and
    /// a [`DeliveryStatus::Skipped`] state that `state pending` shows.
    async fn skip(
        &self,
        id: &DestinationId,
        losses: &[crate::loss::Loss],
        staff: &str,
        route: &str,
        robots: bool,
        previous: Option<&DestinationState>,
    ) -> Result<(), StoreError> {
        let keys: Vec<_> = losses.iter().map(crate::loss::Loss::key).collect();
        self.store.complete(id, &keys).await?;
        let skipped = previous
            .filter(|p| p.status == DeliveryStatus::Skipped)
            .map_or(0, |p| p.attempts)
            + u32::try_from(keys.len()).unwrap_or(u32::MAX);
        metrics::counter!("churn_alert_deliveries_skipped_total", "reason" => "no_email")
            .increment(keys.len() as u64);
        let reached = if robots {
            "the route's robots still got them"
        } else {
            "the route has no robot, so nobody was told"
        };
        let reason = format!(
            "{skipped} loss(es) not emailed: Weiban has no email address for staff member {staff}; add it to `staff_emails` of route `{route}` ({reached})"
        );
        tracing::warn!(destination = %id, "{reason}");
        let now = crate::time::unix_now();
        let state = DestinationState {
            status: DeliveryStatus::Skipped,
            reason,
            since: previous.map_or(now, |p| p.since),
            retry_at: None,
            attempts: skipped,
            target: None,
        };
        self.store.set_destination_state(id, &state).await
    }

    /// Records a refusal, logs it once, and ends this destination's pass.
    async fn failed(
        &self,
        destination: &Destination<'_>,
        mut outcome: Outcome,
        previous: Option<&DestinationState>,
        err: SendError,
    ) -> Result<Outcome, StoreError> {
        // A pass can run for minutes (pacing): wait from now, not from when it started.
        let now = crate::time::unix_now();
        let mut next = policy::after_failure(previous, &err, now, self.blocked_wait);
        next.target = Some(destination.fingerprint());
        let described = destination.describe();
        match next.retry_at {
            None => tracing::error!(
                destination = %described,
                "{err}; its losses stay pending until the config is fixed and `churn-alert state retry --route {}` is run",
                destination.route.name
            ),
            Some(at) => {
                tracing::warn!(destination = %described, "{err}; retrying after {}s", at - now)
            }
        }
        outcome.waiting = Some(err.to_string());
        outcome.retry_at = next.retry_at;
        self.store
            .set_destination_state(&destination.id, &next)
            .await?;
        Ok(outcome)
    }

    /// Moves what waits for `from`, a destination that left the config, as [`reroute`] plans.
    async fn reroute(
        &self,
        from: &DestinationId,
        count: usize,
        router: &Router<'_>,
        now: i64,
        report: &mut DeliveryReport,
    ) -> Result<(), StoreError> {
        let plan = reroute::plan(
            from,
            self.store.pending(from)?,
            |loss| router.destinations_for(loss),
            |id| self.store.pending_keys(id),
        )?;
        if !plan.moves.is_empty() {
            let moved = self.store.reroute(from, &plan.moves).await?;
            tracing::warn!(
                from = %from,
                moved,
                "destination left the config; its pending losses go to route `{}`'s current destinations (those another destination of the route already delivered are not sent again)",
                from.route
            );
        }
        let stranded = plan.stranded + self.reroute_prepared(from, router).await?;
        if stranded > 0 {
            let reason = format!(
                "{stranded} pending, but this destination left the config and route `{}` has no other destination of its kind for them; restore the destination, or discard them with `churn-alert state drop --destination {from}`",
                from.route
            );
            tracing::error!(destination = %from, "{reason}");
            report.stranded += stranded;
            report.waiting.push((from.to_string(), reason));
        }
        if stranded < count {
            // Delivered on the next pass, through the route's current destinations.
            report.retry_at(now);
        }
        Ok(())
    }

    /// Moves the prepared messages (reports, alerts) of `from`, a destination that left the
    /// config, to the route's own destinations of the same kind that their producer did not
    /// queue them for (a fixed robot key or address is a new destination: it gets them; a
    /// sibling robot had its own copy). Returns how many have nowhere to go.
    async fn reroute_prepared(
        &self,
        from: &DestinationId,
        router: &Router<'_>,
    ) -> Result<usize, StoreError> {
        let targets: Vec<DestinationId> = router
            .config()
            .route(&from.route)
            .map(Router::own_destinations)
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d.kind == from.kind && d != from)
            .collect();
        let mut stranded = 0;
        for (key, message) in self.store.prepared_for(from)? {
            let fresh: Vec<DestinationId> = targets
                .iter()
                .filter(|d| !message.queued_for.contains(&d.to_string()))
                .cloned()
                .collect();
            if fresh.is_empty() {
                stranded += 1;
                continue;
            }
            self.store
                .move_prepared(from, &key, &message, &fresh)
                .await?;
            tracing::warn!(from = %from, what = %message.what, "destination left the config; its report or alert goes to the route's new destination of its kind");
        }
        Ok(stranded)
    }

    /// If `now` falls in quiet hours, when they end (unix seconds).
    pub fn quiet_until(&self, now: i64) -> Option<i64> {
        crate::schedule::quiet_until(self.quiet_hours, self.tz, now)
    }
}
