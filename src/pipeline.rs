//! One cycle of the pipeline: source → store → route → render → sink.
//!
//! [`Pipeline::poll`] fetches the window since the last one fetched whole (minus an overlap for
//! late records) and records each page in the store as it arrives; only when every page
//! answered does the window advance. [`Pipeline::deliver`] then works from the outbox alone:
//! per destination it renders what is pending, sends it part by part, and marks each part
//! delivered only after the destination accepted it. A destination that failed keeps its
//! pending losses and a [`DestinationState`] saying why and when to try again.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures::future::join_all;

use chrono_tz::Tz;

use crate::config::Config;
use crate::destination::DestinationId;
use crate::loss::Loss;
use crate::render::compose::{compose, Body, Outgoing};
use crate::render::{RenderError, Renderer};
use crate::schedule::QuietHours;
use crate::shutdown::Shutdown;
use crate::sink::{EmailSink, SendError, WecomSink};
use crate::source::{FetchError, WeibanClient, WeibanError, Window};
use crate::store::{DeliveryStatus, DestinationState, Pending, Store, StoreError};
use crate::transform::route::Target;
use crate::transform::{Destination, Router};

/// Most losses rendered for one destination at a time.
const DELIVERY_BATCH: usize = 2000;

/// Why a cycle could not finish its poll.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(transparent)]
    Weiban(#[from] WeibanError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Render(#[from] RenderError),
}

impl From<FetchError<StoreError>> for CycleError {
    fn from(e: FetchError<StoreError>) -> Self {
        match e {
            FetchError::Weiban(e) => Self::Weiban(e),
            FetchError::Sink(e) => Self::Store(e),
        }
    }
}

/// How a fetched window's losses are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recording {
    /// Queued for delivery as one poll.
    OnePoll,
    /// Queued for delivery, each interval of outflow time counted as a poll of its own (a
    /// catch-up after an outage, a backfill).
    PerInterval,
    /// Remembered without being delivered (`backfill --mark-only`).
    MarkOnly,
}

impl Recording {
    fn queue(per_interval: bool) -> Self {
        if per_interval {
            Self::PerInterval
        } else {
            Self::OnePoll
        }
    }
}

/// What one poll found.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PollReport {
    pub window: Option<Window>,
    pub fetched: u64,
    pub new_losses: usize,
}

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
}

impl DeliveryReport {
    pub fn all_delivered(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// Everything a cycle needs, built once from the config.
pub(crate) struct Pipeline {
    config: Config,
    store: Store,
    weiban: WeibanClient,
    renderer: Renderer,
    wecom: WecomSink,
    email: Option<EmailSink>,
    quiet_hours: Option<QuietHours>,
    tz: Tz,
    overlap: i64,
    first_lookback: i64,
    retention: i64,
    blocked_wait: i64,
    /// Seconds between scheduled runs (at least 1).
    interval: i64,
}

impl Pipeline {
    pub fn new(config: Config, store: Store) -> anyhow::Result<Self> {
        let schedule = config.schedule()?;
        Ok(Self {
            store,
            weiban: WeibanClient::new(&config.weiban)?,
            renderer: Renderer::new(schedule.timezone(), config.templates.dir.as_deref())?,
            wecom: WecomSink::new(&config.wecom)?,
            email: config.smtp.as_ref().map(EmailSink::new).transpose()?,
            quiet_hours: config.quiet_hours()?,
            tz: schedule.timezone(),
            overlap: secs(config.weiban.overlap),
            first_lookback: secs(config.weiban.first_lookback),
            retention: secs(config.store.retention),
            blocked_wait: secs(config.wecom.blocked_wait).max(1),
            interval: schedule.interval().map_or(3600, secs).max(1),
            config,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// Fetches the new window and records its losses; advances the window only when whole.
    pub async fn poll(&self, now: i64) -> Result<PollReport, CycleError> {
        let pruned = self.store.prune(self.cutoff(now)).await?;
        if pruned > 0 {
            tracing::info!(pruned, "forgot losses older than the retention");
        }
        let window = self.next_window(now)?;
        // After an outage the window reaches back over missed polls: count them as such.
        let regular = self.interval.saturating_mul(2).saturating_add(self.overlap);
        let catching_up =
            self.store.last_window_end()?.is_some() && window.end - window.start > regular;
        let (fetched, new_losses) = self
            .record_window(window, now, Recording::queue(catching_up))
            .await?;
        self.store.advance_window(window.end).await?;
        Ok(PollReport {
            window: Some(window),
            fetched,
            new_losses,
        })
    }

    /// Oldest outflow time still reported: older losses are pruned and must not come back.
    pub fn cutoff(&self, now: i64) -> i64 {
        now - self.retention
    }

    /// The window a poll at `now` fetches: from the last whole window (minus the overlap).
    pub fn next_window(&self, now: i64) -> Result<Window, CycleError> {
        let wanted = match self.store.last_window_end()? {
            Some(end) => end - self.overlap,
            None => now - self.first_lookback,
        };
        let cutoff = self.cutoff(now);
        if wanted < cutoff {
            tracing::warn!(
                skipped_secs = cutoff - wanted,
                "the window would reach back past store.retention; losses older than the retention are not fetched (raise store.retention to cover long outages)"
            );
        }
        Ok(Window {
            start: wanted.max(cutoff),
            end: now,
        })
    }

    /// Fetches `window` and records its new losses page by page, as `how` says. Returns
    /// (fetched, new). Does not move the window.
    pub async fn record_window(
        &self,
        window: Window,
        now: i64,
        how: Recording,
    ) -> Result<(u64, usize), CycleError> {
        let mark_only = how == Recording::MarkOnly;
        let per_interval = how != Recording::OnePoll;
        let cutoff = self.cutoff(now);
        let router = Router::new(&self.config);
        let mut new_losses = 0;
        let fetched = self
            .weiban
            .fetch_window(window, async |losses: Vec<Loss>| {
                let batch: Vec<(Loss, Vec<DestinationId>)> = losses
                    .into_iter()
                    .filter(|loss| loss.outflow_at >= cutoff)
                    .map(|loss| {
                        let destinations = if mark_only {
                            Vec::new()
                        } else {
                            router.destinations_for(&loss)
                        };
                        (loss, destinations)
                    })
                    .collect();
                new_losses += self
                    .store
                    .record(&batch, |loss| {
                        self.poll_stamp(window, now, loss.outflow_at, per_interval)
                    })
                    .await?;
                Ok::<_, StoreError>(())
            })
            .await?;
        metrics::counter!("churn_alert_losses_found_total").increment(new_losses as u64);
        Ok((fetched, new_losses))
    }

    /// The poll a loss counts for in storm protection: `now` for a regular poll; for a window
    /// that stands for many polls (a catch-up, a backfill), the interval of outflow time it
    /// falls in, as if the daemon had been polling all along: a backlog is not a storm.
    fn poll_stamp(&self, window: Window, now: i64, outflow_at: i64, per_interval: bool) -> i64 {
        if !per_interval {
            return now;
        }
        let behind = (window.end - outflow_at).max(0);
        window.end - (behind / self.interval) * self.interval
    }

    /// What a cycle at `now` would send, per destination id: what is pending plus what the
    /// next window holds that is not remembered yet. Changes nothing.
    pub async fn plan(&self, now: i64) -> Result<BTreeMap<DestinationId, Vec<Loss>>, CycleError> {
        let mut plan: BTreeMap<DestinationId, Vec<Loss>> = BTreeMap::new();
        for id in self.store.pending_counts()?.into_keys() {
            let pending = self.store.pending(&id)?.into_iter().map(|p| p.loss);
            plan.entry(id).or_default().extend(pending);
        }
        let cutoff = self.cutoff(now);
        let router = Router::new(&self.config);
        let mut seen_now = HashSet::new();
        self.weiban
            .fetch_window(self.next_window(now)?, async |losses: Vec<Loss>| {
                for loss in losses {
                    let key = loss.key();
                    if loss.outflow_at < cutoff
                        || self.store.is_seen(&loss)?
                        || !seen_now.insert(key)
                    {
                        continue;
                    }
                    for id in router.destinations_for(&loss) {
                        plan.entry(id).or_default().push(loss.clone());
                    }
                }
                Ok::<_, StoreError>(())
            })
            .await?;
        Ok(plan)
    }

    /// Sends what is pending, every destination concurrently.
    pub async fn deliver(
        &self,
        now: i64,
        shutdown: &Shutdown,
    ) -> Result<DeliveryReport, CycleError> {
        let pending = self.store.pending_counts()?;
        let mut report = DeliveryReport::default();
        if let Some(end) = self.quiet_until(now) {
            report.held = pending.values().sum();
            report.next_retry_at = Some(end);
            if report.held > 0 {
                tracing::info!(
                    held = report.held,
                    "quiet hours: deliveries held until they end"
                );
            }
            return Ok(report);
        }
        let router = Router::new(&self.config);
        let mut jobs = Vec::new();
        for (id, count) in pending {
            match router.get(&id) {
                Some(destination) => jobs.push(async move {
                    let described = destination.describe();
                    (described, self.deliver_to(destination, now, shutdown).await)
                }),
                None => {
                    let stranded = self.reroute(&id, &router).await?;
                    if stranded > 0 {
                        report.stranded += stranded;
                        report.waiting.push((
                            id.to_string(),
                            format!(
                                "{stranded} pending, but this destination left the config and route `{}` has no other destination of its kind for them; restore the destination, or discard them with `churn-alert state drop --destination {id}`",
                                id.route
                            ),
                        ));
                    }
                    if stranded < count {
                        // Delivered on the next pass, through the route's current destinations.
                        report.next_retry_at = Some(now);
                    }
                }
            }
        }
        for (described, outcome) in join_all(jobs).await {
            // One destination's trouble (a store record it cannot read) is its own: the
            // others deliver, and the cycle still polls.
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(destination = %described, "delivery failed: {e}");
                    report.waiting.push((described, e.to_string()));
                    continue;
                }
            };
            report.messages_sent += outcome.messages_sent;
            report.losses_delivered += outcome.losses_delivered;
            report.held += outcome.held;
            if let Some(reason) = outcome.waiting {
                report.waiting.push((outcome.destination, reason));
            }
            if let Some(at) = outcome.retry_at {
                report.next_retry_at = Some(report.next_retry_at.map_or(at, |t| t.min(at)));
            }
        }
        Ok(report)
    }

    async fn deliver_to(
        &self,
        destination: Destination<'_>,
        now: i64,
        shutdown: &Shutdown,
    ) -> Result<DestinationOutcome, CycleError> {
        let mut outcome = DestinationOutcome {
            destination: destination.describe(),
            ..Default::default()
        };
        let mut state = self.store.destination_state(&destination.id)?;
        match &state {
            Some(s) if s.status == DeliveryStatus::Failed => {
                outcome.waiting = Some(format!(
                    "failed permanently: {}; fix the config, then run `churn-alert state retry --route {}`",
                    s.reason, destination.route.name
                ));
                return Ok(outcome);
            }
            Some(s) if s.retry_at.is_some_and(|at| at > now) => {
                outcome.waiting = Some(format!("waiting to retry after: {}", s.reason));
                outcome.retry_at = s.retry_at;
                return Ok(outcome);
            }
            _ => {}
        }
        // Pending losses are taken a batch at a time so that a huge backlog (a backfill, a
        // long outage) never sits in memory whole; delivered ones leave the outbox, so each
        // read starts with what is still due.
        loop {
            let losses = self.store.pending_batch(&destination.id, DELIVERY_BATCH)?;
            if losses.is_empty() {
                break;
            }
            let mut reported = 0;
            let messages = match compose(&self.renderer, &destination, &losses) {
                Ok(messages) => messages,
                Err(e) => {
                    // A template that fails on this data, or a staff member without an
                    // address: waits for a person, visible in `state pending`.
                    let err = SendError::Permanent {
                        reason: e.to_string(),
                    };
                    return self
                        .failed(&destination, &mut outcome, state.as_ref(), err, now)
                        .await;
                }
            };
            for message in messages {
                if shutdown.is_shutdown() {
                    outcome.waiting = Some("shutting down".into());
                    return Ok(outcome);
                }
                if let Some(end) = self.quiet_until(unix_now()) {
                    // Quiet hours began during this pass: the rest waits for their end.
                    outcome.retry_at = Some(end);
                    outcome.held = self.store.pending_count(&destination.id);
                    tracing::info!(destination = %outcome.destination, held = outcome.held, "quiet hours began while sending: the rest is held until they end");
                    return Ok(outcome);
                }
                let started = Instant::now();
                let mut signal = shutdown.clone();
                let sent = tokio::select! {
                    sent = self.send(&destination.target, &message) => sent,
                    () = signal.recv() => {
                        tracing::info!(destination = %outcome.destination, "abandoned an in-flight send for shutdown; it stays pending");
                        outcome.waiting = Some("shutting down".into());
                        return Ok(outcome);
                    }
                };
                match sent {
                    Ok(()) => {
                        match self.store.complete(&destination.id, &message.losses).await {
                            Ok(()) => {}
                            Err(e @ StoreError::NotCompleted { .. }) => {
                                // Sending again would repeat this message every cycle.
                                let err = SendError::Permanent {
                                    reason: e.to_string(),
                                };
                                return self
                                    .failed(&destination, &mut outcome, state.as_ref(), err, now)
                                    .await;
                            }
                            Err(e) => return Err(e.into()),
                        }
                        // The robot takes messages again: a later fault starts a new streak.
                        if state.take().is_some() {
                            self.store.clear_destination_state(&destination.id).await?;
                        }
                        metrics::counter!("churn_alert_messages_sent_total", "sink" => destination.id.kind.channel().as_str())
                            .increment(1);
                        tracing::debug!(destination = %outcome.destination, losses = message.losses.len(), elapsed = ?started.elapsed(), "message accepted");
                        outcome.messages_sent += 1;
                        outcome.losses_delivered += message.losses.len();
                        reported += message.losses.len();
                    }
                    Err(err) => {
                        return self
                            .failed(&destination, &mut outcome, state.as_ref(), err, now)
                            .await;
                    }
                }
            }
            if losses.len() < DELIVERY_BATCH || reported < losses.len() {
                break;
            }
        }
        Ok(outcome)
    }

    /// Moves what is pending for a destination that left the config (a robot removed from
    /// `wecom_webhooks`, a staff member's own robot removed) to its route's current
    /// destinations of the same channel, so that nothing waits for a place that no longer
    /// exists. Returns how many losses stay stranded: those with no such destination left.
    ///
    /// Destinations of the same kind (the route's robots, its `email_to` addresses) were
    /// queued together with the removed one, so one that no longer holds a loss delivered it:
    /// such a loss leaves without being queued again, and nobody receives it twice.
    async fn reroute(
        &self,
        from: &DestinationId,
        router: &Router<'_>,
    ) -> Result<usize, StoreError> {
        let pending = self.store.pending(from)?;
        let mut moves: Vec<(Pending, Vec<DestinationId>)> = Vec::new();
        let mut stranded = 0;
        for p in pending {
            let key = p.loss.key();
            let candidates: Vec<DestinationId> = router
                .destinations_for(&p.loss)
                .into_iter()
                .filter(|d| {
                    d.route == from.route && d.kind.channel() == from.kind.channel() && d != from
                })
                .collect();
            if candidates.is_empty() {
                stranded += 1;
                continue;
            }
            let mut delivered = false;
            for sibling in candidates.iter().filter(|d| d.kind == from.kind) {
                delivered |= !self.store.is_pending(sibling, &key)?;
            }
            let targets = if delivered {
                Vec::new()
            } else {
                candidates
                    .into_iter()
                    .filter(|d| d.kind != from.kind)
                    .collect()
            };
            moves.push((p, targets));
        }
        if !moves.is_empty() {
            let moved = self.store.reroute(from, &moves).await?;
            tracing::warn!(
                from = %from,
                moved,
                "destination left the config; its pending losses go to route `{}`'s current destinations (those another destination of the route already delivered are not sent again)",
                from.route
            );
        }
        if stranded > 0 {
            tracing::error!(
                destination = %from,
                stranded,
                "{stranded} losses wait for a destination that left the config, and route `{}` has no other destination of its kind for them; restore the destination in the config, or discard them with `churn-alert state drop --destination {from}`",
                from.route
            );
        }
        Ok(stranded)
    }

    /// If `now` falls in quiet hours, when they end (unix seconds).
    fn quiet_until(&self, now: i64) -> Option<i64> {
        let quiet = self.quiet_hours?;
        let local = chrono::DateTime::from_timestamp(now, 0)?.with_timezone(&self.tz);
        quiet.ends_after(local).map(|end| end.timestamp())
    }

    /// Sends one composed message through the sink its target names.
    async fn send(&self, target: &Target, message: &Outgoing) -> Result<(), SendError> {
        match (&message.body, target) {
            (
                Body::Wecom {
                    msgtype,
                    content,
                    mentioned,
                },
                Target::Wecom { robot, .. },
            ) => self.wecom.send(robot, *msgtype, content, mentioned).await,
            (
                Body::Email {
                    to,
                    subject,
                    text,
                    html,
                },
                Target::Email { .. },
            ) => match &self.email {
                Some(email) => email.send(to, subject, text, html).await,
                None => Err(SendError::Permanent {
                    reason: "email destination but no [smtp] section in the config".into(),
                }),
            },
            _ => Err(SendError::Permanent {
                reason: "message composed for another kind of destination".into(),
            }),
        }
    }

    /// Records a failed delivery, logs it once, and ends this destination's pass.
    async fn failed(
        &self,
        destination: &Destination<'_>,
        outcome: &mut DestinationOutcome,
        previous: Option<&DestinationState>,
        err: SendError,
        now: i64,
    ) -> Result<DestinationOutcome, CycleError> {
        metrics::counter!("churn_alert_messages_failed_total", "sink" => destination.id.kind.channel().as_str()).increment(1);
        // A pass can run for minutes (pacing): wait from now, not from when it started.
        let now = now.max(unix_now());
        let next = self.failure_state(previous, &err, now);
        match next.status {
            DeliveryStatus::Failed => tracing::error!(
                destination = %outcome.destination,
                "{err}; its losses stay pending until the config is fixed and `churn-alert state retry --route {}` is run",
                destination.route.name
            ),
            DeliveryStatus::Retrying => tracing::warn!(
                destination = %outcome.destination,
                "{err}; retrying after {}s",
                next.retry_at.map_or(0, |at| at - now)
            ),
        }
        outcome.waiting = Some(err.to_string());
        outcome.retry_at = next.retry_at;
        self.store
            .set_destination_state(&destination.id, &next)
            .await?;
        Ok(std::mem::take(outcome))
    }

    /// The state after `err`: permanent faults wait for a person, others back off.
    fn failure_state(
        &self,
        previous: Option<&DestinationState>,
        err: &SendError,
        now: i64,
    ) -> DestinationState {
        let attempts = previous.map_or(0, |p| p.attempts) + 1;
        let since = previous.map_or(now, |p| p.since);
        let (status, retry_at) = match err {
            SendError::Permanent { .. } => (DeliveryStatus::Failed, None),
            // Blocked robots stay blocked for minutes: wait, doubling up to ten minutes (or
            // `blocked_wait` itself, if that is longer).
            SendError::Blocked | SendError::Transient { .. } => {
                let wait = self
                    .blocked_wait
                    .saturating_mul(1 << (attempts - 1).min(6))
                    .min(self.blocked_wait.max(600));
                (DeliveryStatus::Retrying, Some(now + wait))
            }
        };
        DestinationState {
            status,
            reason: err.to_string(),
            since,
            retry_at,
            attempts,
        }
    }
}

/// What happened at one destination.
#[derive(Debug, Default)]
struct DestinationOutcome {
    destination: String,
    messages_sent: usize,
    losses_delivered: usize,
    waiting: Option<String>,
    retry_at: Option<i64>,
    /// Losses left for the end of quiet hours that began during the pass.
    held: usize,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// Now, in unix seconds.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The outcome of a full cycle, for the one log line and the exit code.
#[derive(Debug)]
pub(crate) struct CycleReport {
    pub poll: PollReport,
    /// Why the poll failed, if it did (deliveries still ran).
    pub poll_error: Option<String>,
    pub delivery: DeliveryReport,
    pub pending: usize,
    pub elapsed: Duration,
}

impl CycleReport {
    /// Every due message was accepted and the window was fetched whole.
    pub fn is_clean(&self) -> bool {
        self.poll_error.is_none() && self.delivery.all_delivered()
    }
}

impl Pipeline {
    /// Delivers what was left pending, polls, delivers what is new; logs one line.
    ///
    /// A failed poll does not stop deliveries; a store failure does (it is returned).
    pub async fn cycle(&self, shutdown: &Shutdown) -> Result<CycleReport, CycleError> {
        let started = Instant::now();
        let now = unix_now();
        let mut delivery = match self.deliver(now, shutdown).await {
            Ok(report) => report,
            Err(e) => {
                // Never let a delivery problem stop polling: new losses must still be recorded.
                tracing::error!("delivering pending messages failed: {e}");
                DeliveryReport {
                    waiting: vec![("outbox".into(), e.to_string())],
                    ..Default::default()
                }
            }
        };
        let mut poll = PollReport::default();
        let mut poll_error = None;
        if !shutdown.is_shutdown() {
            match self.poll(now).await {
                Ok(report) => poll = report,
                Err(CycleError::Store(e)) => return Err(e.into()),
                Err(e) => {
                    metrics::counter!("churn_alert_poll_failures_total").increment(1);
                    poll_error = Some(e.to_string());
                }
            }
            let rerouted = delivery.next_retry_at.is_some_and(|at| at <= now);
            // A poll that failed may still have recorded its first pages: send them now.
            let polled_some = poll.new_losses > 0 || poll_error.is_some();
            if polled_some || !delivery.all_delivered() || rerouted {
                let second = self.deliver(unix_now(), shutdown).await?;
                delivery.messages_sent += second.messages_sent;
                delivery.losses_delivered += second.losses_delivered;
                delivery.waiting = second.waiting;
                delivery.stranded = second.stranded;
                delivery.next_retry_at = second.next_retry_at;
                delivery.held = second.held;
            }
        }
        let pending = self.store.pending_counts()?.values().sum();
        metrics::counter!("churn_alert_cycles_total").increment(1);
        metrics::gauge!("churn_alert_pending_deliveries").set(pending as f64);
        let report = CycleReport {
            poll,
            poll_error,
            delivery,
            pending,
            elapsed: started.elapsed(),
        };
        report.log(self.tz);
        Ok(report)
    }
}

impl CycleReport {
    fn log(&self, tz: Tz) {
        let time = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .map(|t| t.with_timezone(&tz).format("%m-%d %H:%M:%S").to_string())
                .unwrap_or_else(|| t.to_string())
        };
        let window = self
            .poll
            .window
            .map(|w| format!("{}..{}", time(w.start), time(w.end)))
            .unwrap_or_else(|| "-".into());
        match &self.poll_error {
            None => tracing::info!(
                window = %window,
                fetched = self.poll.fetched,
                new_losses = self.poll.new_losses,
                messages_sent = self.delivery.messages_sent,
                pending = self.pending,
                held = self.delivery.held,
                elapsed_ms = self.elapsed.as_millis() as u64,
                "cycle done"
            ),
            Some(error) => tracing::error!(
                window = %window,
                messages_sent = self.delivery.messages_sent,
                pending = self.pending,
                elapsed_ms = self.elapsed.as_millis() as u64,
                "cycle could not poll Weiban: {error}; the same window is fetched again next cycle"
            ),
        }
        for (destination, reason) in &self.delivery.waiting {
            tracing::warn!(%destination, "not delivered: {reason}");
        }
    }
}
