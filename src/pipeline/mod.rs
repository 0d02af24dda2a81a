//! One cycle of the pipeline: source → store → route → render → sink.
//!
//! The poll runs [`stages`] on each page; delivery is [`crate::deliver`]'s. Reports and the
//! staff-deletion alert run after a cycle, from the commands (`run`, `once`), so that this
//! module knows nothing of them.
//!
//! [`Pipeline::poll`] fetches the window since the last one fetched whole (minus an overlap for
//! late records) and records its pages in the store as they arrive, a few pages per
//! transaction; only when every page answered does the window advance. [`Pipeline::deliver`]
//! then works from the outbox alone: per destination it renders what is pending, sends it part
//! by part, and marks each part delivered only after the destination accepted it. A
//! destination that failed keeps its pending losses and a [`DestinationState`] saying why and
//! when to try again.

mod cycle_report;
pub(crate) use cycle_report::CycleReport;
mod slices;
mod stages;

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::zone::Zone;

use crate::config::Config;
use crate::deliver::Delivery;
pub(crate) use crate::deliver::DeliveryReport;
use crate::destination::DestinationId;
use crate::loss::Loss;
use crate::render::{RenderError, Renderer};
use crate::shutdown::Shutdown;
use crate::sink::Sinks;
use crate::source::{FetchError, WeibanClient, WeibanError, Window};
use crate::store::{Recorded, Store, StoreError};
use crate::time::unix_now;
use crate::transform::enrich::OrgChart;
use stages::{Outcome, PageStages};

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

/// How many decided losses a transaction records at least (the last of a window, any number):
/// the pages of a window are recorded in groups, not one by one. Every sled transaction costs
/// two log writes (its batch manifest, then its data), each handed to sled's I/O pool, which
/// wakes all of its idle threads; a page of 100 losses is a small unit for that. The group
/// waits in memory until it is recorded: 500 raised the peak of a 10 000-loss run by about
/// 0.9 MB, 300 by 0.3–0.6 MB, for about the same CPU (BENCHMARKS.md, seventh pass).
const RECORD_GROUP: usize = 300;

/// What one poll found.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PollReport {
    pub window: Option<Window>,
    pub fetched: u64,
    pub new_losses: usize,
    /// The poll took a slice of a long window ([`slices`]): poll again after delivering.
    pub more: bool,
}

/// Everything a cycle needs, built once from the config: the poll half here, the delivery
/// half in [`Delivery`].
pub(crate) struct Pipeline {
    config: Config,
    store: Store,
    weiban: WeibanClient,
    delivery: Delivery,
    org: std::sync::Arc<OrgChart>,
    tz: Zone,
    overlap: i64,
    first_lookback: i64,
    retention: i64,
    /// Seconds between scheduled runs (at least 1).
    interval: i64,
}

impl Pipeline {
    pub fn new(config: Config, store: Store) -> anyhow::Result<Self> {
        let pacer = crate::sink::pacer::Pacer::new(config.wecom.messages_per_minute);
        Self::sharing(config, store, pacer)
    }

    /// A pipeline whose robots are paced by `pacer`, shared with the other corps a daemon
    /// serves.
    pub fn sharing(
        config: Config,
        store: Store,
        pacer: crate::sink::pacer::Pacer,
    ) -> anyhow::Result<Self> {
        store.migrate(&config)?;
        let schedule = config.schedule();
        let tz = config.timezone();
        let org = std::sync::Arc::new(OrgChart::new(&config, store.clone()));
        let delivery = Delivery {
            org: std::sync::Arc::clone(&org),
            store: store.clone(),
            renderer: Renderer::new(tz, config.templates.dir.as_deref())?,
            sinks: Sinks::sharing(&config, pacer)?,
            quiet_hours: config.quiet_hours(),
            tz,
            blocked_wait: config.wecom.blocked_wait,
        };
        Ok(Self {
            org,
            store,
            weiban: WeibanClient::new(&config.weiban)?,
            delivery,
            tz,
            overlap: secs(config.weiban.overlap),
            first_lookback: secs(config.weiban.first_lookback),
            retention: secs(config.store.retention),
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
        &self.delivery.renderer
    }

    pub fn sinks(&self) -> &Sinks {
        &self.delivery.sinks
    }

    pub fn weiban(&self) -> &WeibanClient {
        &self.weiban
    }

    /// A routing snapshot: the config with the org chart as read now.
    pub fn routing(&self) -> crate::transform::Routing<'_> {
        self.org.routing(&self.config)
    }

    /// The org chart, as last read.
    pub fn org(&self) -> &OrgChart {
        &self.org
    }

    /// Fetches the new window and records its losses; advances the window only when whole.
    pub async fn poll(&self, now: i64) -> Result<PollReport, CycleError> {
        self.poll_after(now, false).await
    }

    /// [`Pipeline::poll`]; `after_slice` when the last window was a slice this catch-up
    /// fetched at `now` or later ([`Pipeline::window_after`]).
    pub(super) async fn poll_after(
        &self,
        now: i64,
        after_slice: bool,
    ) -> Result<PollReport, CycleError> {
        let pruned = self.store.prune(self.cutoff(now)).await?;
        if pruned > 0 {
            tracing::info!(pruned, "forgot losses older than the retention");
        }
        let whole = self.window_after(now, after_slice)?;
        // After an outage the window reaches back over missed polls: count them as such.
        let regular = self.interval.saturating_mul(2).saturating_add(self.overlap);
        let long = whole.end - whole.start > regular;
        let catching_up = self.store.last_window_end()?.is_some() && long;
        let window = if long {
            self.slice(whole).await?
        } else {
            whole
        };
        let (fetched, new_losses) = self
            .record_window(window, now, Recording::queue(catching_up))
            .await?;
        self.store.advance_window(window.end).await?;
        Ok(PollReport {
            window: Some(window),
            fetched,
            new_losses,
            more: window.end < whole.end,
        })
    }

    /// Oldest outflow time still reported: older losses are pruned and must not come back.
    pub fn cutoff(&self, now: i64) -> i64 {
        now - self.retention
    }

    /// The window a poll at `now` fetches: from the last whole window (minus the overlap).
    pub fn next_window(&self, now: i64) -> Result<Window, CycleError> {
        self.window_after(now, false)
    }

    /// [`Pipeline::next_window`]; `after_slice` when the last window was a slice of this
    /// catch-up, fetched at `now` or later: the next slice starts as
    /// [`slices::next_slice_start`] says.
    fn window_after(&self, now: i64, after_slice: bool) -> Result<Window, CycleError> {
        let wanted = match self.store.last_window_end()? {
            Some(end) if after_slice => slices::next_slice_start(end, now, self.overlap),
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

    /// Fetches `window` and records its new losses as the pages arrive, a group of pages
    /// ([`RECORD_GROUP`] losses) per transaction, as `how` says, through the poll's
    /// [`stages`]. Returns (fetched, new). Does not move the window.
    pub async fn record_window(
        &self,
        window: Window,
        now: i64,
        how: Recording,
    ) -> Result<(u64, usize), CycleError> {
        // While losses are held for want of routing data, every poll reads the org chart.
        let holding = !self.store.held_counts()?.is_empty();
        self.org.refresh(&self.weiban, now, holding).await;
        let routing = self.routing();
        let outcome = if how == Recording::MarkOnly {
            Outcome::MarkOnly
        } else {
            Outcome::Record
        };
        let mut stages = self.stages(&routing, now, outcome);
        let mut new_losses = 0;
        let mut group: Vec<Recorded> = Vec::new();
        let fetched = self
            .weiban
            .fetch_window(window, async |page: Vec<Loss>| {
                group.extend(stages.decide(page).await?);
                if group.len() >= RECORD_GROUP {
                    new_losses += self
                        .record_group(&stages, &mut group, window, now, how)
                        .await?;
                }
                Ok::<_, StoreError>(())
            })
            .await;
        // The last pages' losses are recorded whether or not the window came whole, as every
        // page was before it: what arrived is kept, and a window fetched again is deduplicated.
        new_losses += self
            .record_group(&stages, &mut group, window, now, how)
            .await?;
        let fetched = fetched?;
        metrics::counter!("churn_alert_losses_found_total").increment(new_losses as u64);
        if stages.strangers {
            // A colleague the org chart does not know yet: read it again, for the next poll
            // (this one held their losses where routing needed departments).
            self.org.refresh(&self.weiban, now, true).await;
        }
        Ok((fetched, new_losses))
    }

    /// Counts the staff deletions of `group` and records its decided losses (seen marks,
    /// outbox entries and holds) in one transaction, then empties it. Returns how many were
    /// new.
    async fn record_group(
        &self,
        stages: &PageStages<'_>,
        group: &mut Vec<Recorded>,
        window: Window,
        now: i64,
        how: Recording,
    ) -> Result<usize, StoreError> {
        if group.is_empty() {
            return Ok(0);
        }
        stages.count_deletions(group).await?;
        let per_interval = how != Recording::OnePoll;
        let new = self
            .store
            .record_routed(group, now, |loss| {
                self.poll_stamp(window, now, loss.outflow_at, per_interval)
            })
            .await?;
        group.clear();
        Ok(new)
    }

    /// The poll's stages for one window, with the org chart as read now.
    fn stages<'a>(
        &'a self,
        routing: &'a crate::transform::Routing<'a>,
        now: i64,
        outcome: Outcome,
    ) -> PageStages<'a> {
        PageStages::new(
            &self.store,
            &self.weiban,
            routing.directory(),
            routing.router(),
            self.cutoff(now),
            self.tz,
            outcome,
        )
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
    /// next window holds that is not remembered yet, decided by the poll's own stages (with
    /// the org chart, the still-followed lookups and routing), stopped before recording.
    /// Changes no loss, delivery or window (the org chart's cache may be refreshed).
    pub async fn plan(&self, now: i64) -> Result<BTreeMap<DestinationId, Vec<Loss>>, CycleError> {
        let mut plan: BTreeMap<DestinationId, Vec<Loss>> = BTreeMap::new();
        for id in self.store.pending_counts()?.into_keys() {
            let pending = self.store.pending(&id)?.into_iter().map(|p| p.loss);
            plan.entry(id).or_default().extend(pending);
        }
        // The org chart as the poll would read it (it is Weiban's data, cached; no loss changes).
        self.org.refresh(&self.weiban, now, false).await;
        let routing = self.routing();
        let mut stages = self.stages(&routing, now, Outcome::Plan);
        self.weiban
            .fetch_window(self.next_window(now)?, async |page: Vec<Loss>| {
                for (loss, destinations, _) in stages.decide(page).await? {
                    for id in destinations {
                        plan.entry(id).or_default().push(loss.clone());
                    }
                }
                Ok::<_, StoreError>(())
            })
            .await?;
        Ok(plan)
    }

    /// Sends what waits for `ids` only.
    pub async fn deliver_some(
        &self,
        ids: &[DestinationId],
        now: i64,
        shutdown: &Shutdown,
    ) -> Result<DeliveryReport, CycleError> {
        Ok(self
            .delivery
            .deliver_some(&self.config, ids, now, shutdown)
            .await?)
    }

    /// Sends what is pending, every destination concurrently.
    pub async fn deliver(
        &self,
        now: i64,
        shutdown: &Shutdown,
    ) -> Result<DeliveryReport, CycleError> {
        Ok(self.delivery.deliver(&self.config, now, shutdown).await?)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
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
            match self.poll_in_slices(now, shutdown).await {
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
            // Held losses are routed again with the org chart this poll read.
            let holding = delivery.on_hold.losses > 0;
            if polled_some || !delivery.all_delivered() || rerouted || holding {
                let second = self.deliver(unix_now(), shutdown).await?;
                delivery.messages_sent += second.messages_sent;
                delivery.losses_delivered += second.losses_delivered;
                delivery.waiting = second.waiting;
                delivery.refusing = second.refusing;
                delivery.stranded = second.stranded;
                delivery.next_retry_at = second.next_retry_at;
                delivery.held = second.held;
                delivery.on_hold = second.on_hold;
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
