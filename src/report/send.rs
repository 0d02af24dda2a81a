//! Running a report: fetch the period from Weiban, plan what each destination of the route
//! receives, and queue it in the outbox, once per period, for the delivery stages to send
//! (the same gate, attempt, policy and reroute as alerts on losses).
//!
//! The destinations are the route's own robots and `email_to` (always, even for a period
//! without losses) and its department robots and mailboxes that have losses in the period;
//! each gets the losses it gets as alerts: the route's filters apply, and a route robot that
//! stands in for departments without a robot of their own reports only those. Staff members'
//! own robots and mailboxes get no reports: reports are for managers. Reports make no
//! still-followed lookups, so `skip_if_still_followed` does not thin them.

use std::path::Path;

use crate::zone::Zone;

use super::period::Period;
use super::plan::{plan, Planned, ReportError};
use super::stats::trend_span;
use super::ReportSpec;
use crate::destination::DestinationId;
use crate::loss::Loss;
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;
use crate::sink::{Sink as _, Sinks};
use crate::source::Window;
use crate::store::{Prepared, Produced, Store, StoreError};
use crate::transform::enrich;
use crate::transform::route::Target;

/// What a run did for one destination.
#[derive(Debug)]
pub(crate) enum Delivered {
    /// Queued in the outbox for the delivery stages to send.
    Queued,
    /// The period was produced before: nothing queued again.
    AlreadyProduced,
    /// Cannot be made for this destination (an email route without `[smtp]`, no address).
    Unsendable(String),
}

/// What a run of one report for one period did.
#[derive(Debug, Default)]
pub(crate) struct Run {
    /// Files written for `out`.
    pub written: Vec<String>,
    /// Each destination's outcome; empty for a dry run.
    pub delivered: Vec<(DestinationId, Delivered)>,
}

/// Where a report run on demand stands at one destination after [`send_now`].
#[derive(Debug)]
pub(crate) enum Sent {
    /// The destination accepted every message that waited (`messages` of them).
    Delivered { messages: usize },
    /// Nothing waited: delivered before.
    AlreadyDelivered,
    /// Still waiting, and why (a refusal; the outbox keeps it and retries it).
    Waiting(String),
    /// It cannot go to this destination at all.
    Unsendable(String),
}

/// Delivers a run's report now (`churn-alert report`, the demo): its destinations are tried
/// at once even when they wait on a back-off, as `state retry` would, through the same
/// delivery stages as everything else.
pub(crate) async fn send_now(
    pipeline: &Pipeline,
    run: &Run,
    now: i64,
    shutdown: &Shutdown,
) -> Result<Vec<(DestinationId, Sent)>, crate::pipeline::CycleError> {
    let store = pipeline.store();
    let mut waiting_before = Vec::new();
    for (id, _) in &run.delivered {
        let waiting = store.prepared_for(id)?.len();
        if waiting > 0 {
            store.clear_destination_state(id).await?;
        }
        waiting_before.push(waiting);
    }
    let ids: Vec<DestinationId> = run.delivered.iter().map(|(id, _)| id.clone()).collect();
    pipeline.deliver_some(&ids, now, shutdown).await?;
    let mut outcomes = Vec::new();
    for ((id, delivered), before) in run.delivered.iter().zip(waiting_before) {
        let sent = match delivered {
            Delivered::Unsendable(reason) => Sent::Unsendable(reason.clone()),
            _ if before == 0 => Sent::AlreadyDelivered,
            _ if store.prepared_for(id)?.is_empty() => Sent::Delivered { messages: before },
            _ => {
                let refused = store
                    .prepared_for(id)?
                    .into_iter()
                    .find_map(|(_, m)| m.refused);
                let state = store.destination_state(id)?.map(|s| s.reason);
                Sent::Waiting(
                    refused
                        .or(state)
                        .unwrap_or_else(|| "not delivered yet".to_owned()),
                )
            }
        };
        outcomes.push((id.clone(), sent));
    }
    Ok(outcomes)
}

/// One report for one period, the way every caller runs it: fetched from Weiban, planned
/// per destination, its files written into `out` when asked, then queued in the outbox for
/// every destination at once, produced once per period (the delivery stages send it) — or,
/// `dry_run`, printed instead.
pub(crate) async fn run(
    pipeline: &Pipeline,
    spec: &ReportSpec,
    period: Period,
    now: i64,
    out: Option<&Path>,
    dry_run: bool,
    shutdown: &Shutdown,
) -> Result<Run, ReportError> {
    let routing = pipeline.routing();
    let uses_departments = pipeline
        .config()
        .route(&spec.route)
        .is_some_and(|r| r.uses_departments());
    if !dry_run && out.is_none() && uses_departments && routing.directory().is_none() {
        // Like a loss, a report is held while routing lacks the org chart: produced now, its
        // department destinations would never get it.
        tracing::warn!(report = %spec.name, period = %period.key(), "report held: route `{}` routes by department and the org chart was never read; it is produced once it is", spec.route);
        return Ok(Run::default());
    }
    let losses = fetch(pipeline, spec, &period, now).await?;
    let router = routing.router();
    let planned = plan(
        pipeline.config(),
        &router,
        pipeline.renderer(),
        spec,
        period,
        &losses,
    )?;
    let mut run = Run::default();
    if let Some(dir) = out {
        run.written = super::output::write_plan(dir, spec, &planned)?;
    }
    if dry_run {
        super::output::print_plan(&planned);
    } else if !shutdown.is_shutdown() {
        run.delivered = queue(
            pipeline.store(),
            pipeline.sinks(),
            spec,
            &period,
            &planned,
            now,
        )
        .await?;
    }
    Ok(run)
}

/// The documented example moved into the middle of `period`: what `check` and `preview`
/// render a report from without asking Weiban.
pub(crate) fn sample_in(period: &Period, tz: Zone) -> Vec<Loss> {
    let window = period.window(tz);
    crate::source::model::documented_example()
        .into_iter()
        .map(|mut loss| {
            loss.outflow_at = window.start + (window.end - window.start) / 2;
            loss
        })
        .collect()
}

/// The span a report for `period` needs from Weiban: the period, the one before, the trend.
pub(crate) fn span_needed(period: &Period) -> Period {
    let (_, trend) = trend_span(period);
    Period {
        first: trend.first.min(period.previous().first),
        last: period.last,
    }
}

/// Fetches the losses a report for `period` needs, with departments filled in.
pub(crate) async fn fetch(
    pipeline: &Pipeline,
    spec: &ReportSpec,
    period: &Period,
    now: i64,
) -> Result<Vec<Loss>, ReportError> {
    let tz = pipeline.config().timezone();
    let span = span_needed(period).window(tz);
    let window = Window {
        start: span.start,
        end: span.end.min(now),
    };
    pipeline.org().refresh(pipeline.weiban(), now, false).await;
    let mut losses = pipeline
        .weiban()
        .losses_in(window)
        .await
        .map_err(|source| ReportError::Weiban {
            report: spec.name.clone(),
            source,
        })?;
    enrich::departments(&mut losses, pipeline.org().current().as_deref());
    Ok(losses)
}

/// Queues each planned report's messages for its destination, the period marked produced in
/// the same transaction; nothing when it was produced before.
pub(crate) async fn queue(
    store: &Store,
    sinks: &Sinks,
    spec: &ReportSpec,
    period: &Period,
    planned: &[Planned<'_>],
    now: i64,
) -> Result<Vec<(DestinationId, Delivered)>, StoreError> {
    let what = format!("report `{}` {}", spec.name, period.key());
    let mut outcomes = Vec::new();
    let mut messages = Vec::new();
    for item in planned {
        let id = item.destination.id.clone();
        // Release 0.1 delivered it here whole (its ledger says so): not again.
        if store.legacy_delivered(&spec.name, &period.key(), &id.to_string())? {
            outcomes.push((id, Delivered::AlreadyProduced));
            continue;
        }
        match prepare(sinks, item, &what, now) {
            Ok(parts) => {
                outcomes.push((id.clone(), Delivered::Queued));
                messages.push((id, parts));
            }
            Err(reason) => {
                tracing::error!(report = %spec.name, period = %period.key(), destination = %id, "report cannot go to this destination: {reason}");
                outcomes.push((id, Delivered::Unsendable(reason)));
            }
        }
    }
    let produced = Produced {
        producer: spec.name.clone(),
        period: period.key(),
    };
    let before = store.report_produced(&produced.producer, &produced.period)?;
    if !before && store.queue_produced(&produced, &messages, now).await? {
        tracing::info!(report = %spec.name, period = %period.key(), destinations = messages.len(), "report queued for delivery");
    } else {
        for (_, outcome) in &mut outcomes {
            if matches!(outcome, Delivered::Queued) {
                *outcome = Delivered::AlreadyProduced;
            }
        }
    }
    Ok(outcomes)
}

/// One destination's report as prepared messages, in sending order.
fn prepare(
    sinks: &Sinks,
    item: &Planned<'_>,
    what: &str,
    now: i64,
) -> Result<Vec<Prepared>, String> {
    let prepared = |label: String, body| Prepared {
        what: what.to_owned(),
        label,
        queued_at: now,
        body,
        queued_for: Vec::new(),
        refused: None,
    };
    match &item.destination.target {
        Target::Wecom { msgtype, .. } => {
            let limit = sinks
                .wecom
                .limit(crate::render::compose::format_of(*msgtype))
                .unwrap_or(usize::MAX);
            Ok(item
                .rendered
                .robot_bodies(*msgtype, limit)
                .into_iter()
                .map(|(label, body)| prepared(label, crate::deliver::prepared::wecom_body(body)))
                .collect())
        }
        Target::Email { to, .. } => {
            sinks
                .email_for(&item.destination.route.name)
                .map_err(|e| e.to_string())?;
            let Some(to) = to.clone() else {
                return Err("no email address".into());
            };
            let message = item.rendered.email(to);
            Ok(vec![prepared(
                "email".into(),
                crate::deliver::prepared::email_body(message),
            )])
        }
    }
}

/// The date today in `tz`.
pub(crate) fn today(tz: Zone, now: i64) -> chrono::NaiveDate {
    super::period::date_of(now, tz)
}
