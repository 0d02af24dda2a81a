//! What the store holds, described against the config: the numbers of `state stats` and the
//! list of `state pending`. Computed here for the CLI and for the daemon's `[server]`
//! (`/state/stats`, `/state/pending`), so that both show the same while the daemon runs.

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError};
use crate::destination::DestinationId;
use crate::store::{DeliveryStatus, Store, StoreError};
use crate::transform::Routing;

/// Why the corp a `state` query names cannot be described.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PickError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The corp `wanted` names among `configs` (the corps of the file at `path`), or the only
/// one; also a corp the file no longer has whose data `store` keeps (a reload removed it),
/// described with the shared settings and no routes of its own, so that what waits for it
/// shows as stranded.
pub(crate) fn pick_corp(
    mut configs: Vec<Config>,
    wanted: Option<&str>,
    store: &Store,
    path: &std::path::Path,
) -> Result<Config, PickError> {
    if let Some(name) = wanted {
        let known = configs.iter().any(|c| c.corp.as_str() == name);
        let kept = if known {
            None
        } else {
            store.corps()?.into_iter().find(|c| c.as_str() == name)
        };
        if let Some(corp) = kept {
            // The shared settings come from any corp of the file; a file of none names none.
            let Some(mut config) = configs.pop() else {
                return Err(ConfigError::NoSuchCorp {
                    path: path.to_owned(),
                    name: name.to_owned(),
                    corps: Vec::new(),
                }
                .into());
            };
            config.corp = corp;
            config.routes.clear();
            config.reports.clear();
            config.fallback = None;
            return Ok(config);
        }
    }
    Ok(Config::select(configs, wanted, path)?)
}

/// One destination's waiting deliveries.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PendingReport {
    /// `None` for losses held for want of routing data (they have no destination yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationId>,
    /// The route of held losses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    pub description: String,
    pub pending: usize,
    pub oldest_enqueued_at: Option<i64>,
    /// `due`, `retrying`, `failed`, `stranded`, `held for quiet hours`, `skipped`, or `held`
    /// (no destination yet: routing lacks data).
    pub status: String,
    pub reason: Option<String>,
    pub failing_since: Option<i64>,
    pub retry_at: Option<i64>,
    pub customers: Vec<String>,
    /// Prepared messages waiting (report parts, staff-deletion alerts), as `what (part)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
}

/// What waits where, and why; plus destinations that skipped losses (no email address).
pub(crate) fn pending(config: &Config, store: &Store) -> Result<Vec<PendingReport>, StoreError> {
    let routing = Routing::new(config, store.directory()?.map(std::sync::Arc::new));
    let router = routing.router();
    let states = store.destination_states()?;
    let held = config.quiet_until(crate::time::unix_now()).is_some();
    let mut reports = Vec::new();
    let counts = store.pending_counts()?;
    for (id, count) in &counts {
        let items = store.pending(id)?;
        let prepared = store.prepared_for(id)?;
        let state = states.get(id);
        let destination = router.get(id);
        reports.push(PendingReport {
            description: destination.as_ref().map_or_else(
                || format!("{id} (no longer in the config)"),
                |d| d.describe(),
            ),
            destination: Some(id.clone()),
            route: None,
            pending: *count,
            oldest_enqueued_at: items
                .iter()
                .map(|p| p.enqueued_at)
                .chain(prepared.iter().map(|(_, m)| m.queued_at))
                .min(),
            status: match (&destination, state.map(|s| s.status)) {
                (None, _) => "stranded",
                (_, Some(DeliveryStatus::Failed)) => "failed",
                (_, Some(DeliveryStatus::Retrying)) => "retrying",
                // Quiet hours hold alerts on losses, never reports and staff-deletion alerts.
                (_, Some(DeliveryStatus::Skipped) | None) if held && !items.is_empty() => {
                    "held for quiet hours"
                }
                (_, Some(DeliveryStatus::Skipped) | None) => "due",
            }
            .to_owned(),
            reason: state.map(|s| s.reason.clone()),
            failing_since: state.map(|s| s.since),
            retry_at: state.and_then(|s| s.retry_at),
            customers: items
                .iter()
                .map(|p| format!("{} ({})", p.loss.customer_name, p.loss.customer_id))
                .collect(),
            messages: prepared
                .iter()
                .map(|(_, m)| match &m.refused {
                    Some(reason) => format!("{} ({}), refused: {reason}", m.what, m.label),
                    None => format!("{} ({})", m.what, m.label),
                })
                .collect(),
        });
    }
    for (id, state) in &states {
        if state.status == DeliveryStatus::Skipped && !counts.contains_key(id) {
            reports.push(PendingReport {
                description: router
                    .get(id)
                    .map_or_else(|| id.to_string(), |d| d.describe()),
                destination: Some(id.clone()),
                route: None,
                pending: 0,
                oldest_enqueued_at: None,
                status: "skipped".into(),
                reason: Some(state.reason.clone()),
                failing_since: Some(state.since),
                retry_at: None,
                customers: Vec::new(),
                messages: Vec::new(),
            });
        }
    }
    reports.extend(held_losses(store)?);
    Ok(reports)
}

/// Losses held for want of routing data: one entry per route and reason, each customer with
/// the staff member who lost them.
fn held_losses(store: &Store) -> Result<Vec<PendingReport>, StoreError> {
    let mut groups: std::collections::BTreeMap<(String, String), Vec<crate::store::HeldLoss>> =
        Default::default();
    for held in store.held_losses()? {
        let why = held.reason.describe(&held.route);
        groups
            .entry((held.route.clone(), why))
            .or_default()
            .push(held);
    }
    Ok(groups
        .into_iter()
        .map(|((route, why), losses)| PendingReport {
            destination: None,
            description: format!("route `{route}`: held, no destination yet"),
            route: Some(route),
            pending: losses.len(),
            oldest_enqueued_at: losses.iter().map(|h| h.since).min(),
            status: "held".into(),
            reason: Some(why),
            failing_since: losses.iter().map(|h| h.since).min(),
            retry_at: None,
            customers: losses
                .iter()
                .map(|h| {
                    let l = &h.pending.loss;
                    format!(
                        "{} ({}) · lost by {} ({})",
                        l.customer_name, l.customer_id, l.staff_name, l.staff_id
                    )
                })
                .collect(),
            messages: Vec::new(),
        })
        .collect())
}
