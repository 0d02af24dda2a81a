//! The `held` tree: losses a route could not place yet, keyed `<route>\0<loss key>` (the
//! route name escaped so that it holds no NUL), each holding a [`HeldLoss`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::{outbox::outbox_key, Pending, Recorded, Store, StoreError};
use crate::destination::DestinationId;
use crate::hold::HoldReason;
use crate::loss::Loss;

/// One held loss as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldLoss {
    #[serde(rename = "r")]
    pub route: String,
    #[serde(rename = "p")]
    pub pending: Pending,
    #[serde(rename = "w")]
    pub reason: HoldReason,
    /// Unix seconds when it was first held.
    #[serde(rename = "s")]
    pub since: i64,
    /// Another route queued the loss when it was recorded: if this route turns out to have no
    /// destination for it, somebody was told and the hold ends.
    #[serde(rename = "e", default)]
    pub elsewhere: bool,
}

/// What becomes of one held loss after it was routed again.
#[derive(Debug)]
pub(crate) enum Release {
    /// It leaves the hold, queued for these destinations (none: a filter took it, or another
    /// route had told somebody).
    Queue(Vec<DestinationId>),
    /// It stays held, with this (perhaps new) record.
    Keep(Box<HeldLoss>),
}

fn held_key(route: &str, loss: &Loss) -> Vec<u8> {
    let mut key = route.escape_default().to_string().into_bytes();
    key.push(0);
    key.extend_from_slice(loss.key().as_bytes());
    key
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree: "held",
        reason: e.to_string(),
    }
}

/// A sled key and value, encoded.
type Encoded = (Vec<u8>, Vec<u8>);

/// The held records of each loss of `batch`, encoded.
pub(super) fn encode_all(
    batch: &[Recorded],
    now: i64,
    poll: &impl Fn(&Loss) -> i64,
) -> Result<Vec<Vec<Encoded>>, StoreError> {
    batch
        .iter()
        .map(|(loss, destinations, holds)| {
            holds
                .iter()
                .map(|(route, reason)| {
                    let held = HeldLoss {
                        route: route.clone(),
                        pending: Pending {
                            loss: loss.clone(),
                            enqueued_at: poll(loss),
                            robots: Vec::new(),
                        },
                        reason: reason.clone(),
                        since: now,
                        elsewhere: !destinations.is_empty(),
                    };
                    let value = serde_json::to_vec(&held).map_err(corrupt)?;
                    Ok((held_key(route, loss), value))
                })
                .collect()
        })
        .collect()
}

impl Store {
    /// Every held loss, in key order.
    pub(crate) fn held_losses(&self) -> Result<Vec<HeldLoss>, StoreError> {
        self.held
            .iter()
            .values()
            .map(|v| serde_json::from_slice(&v?).map_err(corrupt))
            .collect()
    }

    /// How many losses each route holds.
    pub(crate) fn held_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let mut counts = BTreeMap::new();
        for held in self.held_losses()? {
            *counts.entry(held.route).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// Applies what routing decided for held losses, atomically: each leaves the hold and is
    /// queued, or stays with its new record.
    pub(crate) async fn release_held(
        &self,
        decisions: &[(HeldLoss, Release)],
    ) -> Result<(), StoreError> {
        if decisions.is_empty() {
            return Ok(());
        }
        let encoded: Vec<Encoded> = decisions
            .iter()
            .map(|(held, release)| {
                let value = match release {
                    Release::Queue(_) => serde_json::to_vec(&held.pending),
                    Release::Keep(kept) => serde_json::to_vec(kept),
                };
                value
                    .map(|v| (held_key(&held.route, &held.pending.loss), v))
                    .map_err(corrupt)
            })
            .collect::<Result<_, _>>()?;
        (&self.held, &self.outbox).transaction(|(held_tree, outbox)| {
            for ((held, release), (key, value)) in decisions.iter().zip(&encoded) {
                match release {
                    Release::Queue(targets) => {
                        held_tree.remove(key.as_slice())?;
                        let loss = held.pending.loss.key();
                        for target in targets {
                            outbox.insert(outbox_key(target, &loss), value.as_slice())?;
                        }
                    }
                    Release::Keep(_) => {
                        held_tree.insert(key.as_slice(), value.as_slice())?;
                    }
                }
            }
            Ok::<_, ConflictableTransactionError<StoreError>>(())
        })?;
        self.durable().await?;
        Ok(())
    }
}
