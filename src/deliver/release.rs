//! Release stage: held losses routed again with the routing data there is now.
//!
//! Runs at the start of every delivery pass, so after every poll (which reads the org chart
//! again while anything is held) and every reload. A held loss leaves the hold when its route
//! now names destinations (queued), when its route's own filter turns it away (counted), or
//! when its route has no destination for it but another route told somebody when it was
//! recorded. After `directory.hold_for` it goes to its route's own robots and mailboxes, else
//! to `[fallback]`; with neither it stays held, visible, never dropped.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::hold::HoldReason;
use crate::store::HeldLoss;
use crate::store::{Release, StoreError};
use crate::transform::decide::Decision;
use crate::transform::Router;

/// What is still held after a pass, for `/healthz` and the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct StillHeld {
    pub losses: usize,
    /// `N loss(es): why`, one per reason.
    pub reasons: Vec<String>,
}

/// Decides what becomes of `held` now; `None` when nothing changes.
pub(crate) fn release(
    held: &HeldLoss,
    config: &Config,
    router: &Router<'_>,
    now: i64,
) -> Option<Release> {
    let route = config.routes.iter().find(|r| r.name == held.route);
    let reason = match route.map(|r| router.decide(r, &held.pending.loss)) {
        Some(Decision::Queued(ids)) => return Some(ended(held, "routed", ids)),
        Some(Decision::Filtered(filter)) => {
            metrics::counter!("churn_alert_losses_filtered_total", "route" => held.route.clone(), "reason" => filter)
                .increment(1);
            return Some(ended(held, "filtered", Vec::new()));
        }
        // Nobody on this route is to hear of it, and another route's destination took it.
        Some(Decision::Uncovered) if held.elsewhere => {
            return Some(ended(held, "told_elsewhere", Vec::new()))
        }
        Some(Decision::Uncovered) => HoldReason::NoDestination,
        Some(Decision::Held(reason)) => reason,
        None => HoldReason::RouteGone,
    };
    let hold_for = i64::try_from(config.directory.hold_for.as_secs()).unwrap_or(i64::MAX / 4);
    if now.saturating_sub(held.since) >= hold_for {
        let own = route.map(Router::own_destinations).unwrap_or_default();
        if !own.is_empty() {
            return Some(ended(held, "route_destinations", own));
        }
        if let Some(fallback) = config.fallback.as_ref().map(Router::own_destinations) {
            return Some(ended(held, "fallback", fallback));
        }
    }
    (reason != held.reason).then(|| {
        Some(Release::Keep(Box::new(HeldLoss {
            reason,
            ..held.clone()
        })))
    })?
}

/// A hold that ends, counted by how: `churn_alert_holds_ended_total{route,how}`.
fn ended(
    held: &HeldLoss,
    how: &'static str,
    destinations: Vec<crate::destination::DestinationId>,
) -> Release {
    metrics::counter!("churn_alert_holds_ended_total", "route" => held.route.clone(), "how" => how)
        .increment(1);
    Release::Queue(destinations)
}

/// Routes every held loss again and applies the outcome; returns what is still held.
pub(crate) async fn release_all(
    store: &crate::store::Store,
    config: &Config,
    router: &Router<'_>,
    now: i64,
) -> Result<StillHeld, StoreError> {
    let held = store.held_losses()?;
    if held.is_empty() {
        return Ok(StillHeld::default());
    }
    let mut decisions = Vec::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for loss in held {
        let outcome = release(&loss, config, router, now);
        let stays = match &outcome {
            None => Some(loss.reason.describe(&loss.route)),
            Some(Release::Keep(kept)) => Some(kept.reason.describe(&kept.route)),
            Some(Release::Queue(_)) => None,
        };
        if let Some(why) = stays {
            *reasons.entry(why).or_insert(0) += 1;
        }
        if let Some(outcome) = outcome {
            decisions.push((loss, outcome));
        }
    }
    let released = decisions
        .iter()
        .filter(|(_, r)| matches!(r, Release::Queue(_)))
        .count();
    store.release_held(&decisions).await?;
    if released > 0 {
        tracing::info!(released, "held losses routed again");
    }
    Ok(StillHeld {
        losses: reasons.values().sum(),
        reasons: reasons
            .into_iter()
            .map(|(why, n)| format!("{n} loss(es): {why}"))
            .collect(),
    })
}
