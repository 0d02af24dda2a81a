//! The outbox: one entry per (destination, loss) still to be delivered, keyed
//! `<destination id>\0<loss key>` and holding the loss itself, so that a restart can render
//! and send it without asking Weiban again. An entry leaves only when its destination
//! accepted the message that reported it (or when a person drops it).

use std::collections::BTreeMap;

use super::{Pending, Store, StoreError};
use crate::destination::DestinationId;
use crate::loss::LossKey;

impl Store {
    /// Destinations with pending deliveries, and how many each.
    /// What waits, per destination: losses to alert on and prepared messages (reports,
    /// staff-deletion alerts) together.
    pub fn pending_counts(&self) -> Result<BTreeMap<DestinationId, usize>, StoreError> {
        let mut counts = self.loss_counts()?;
        for (id, count) in self.prepared_counts()? {
            *counts.entry(id).or_insert(0) += count;
        }
        Ok(counts)
    }

    /// Losses waiting, per destination.
    fn loss_counts(&self) -> Result<BTreeMap<DestinationId, usize>, StoreError> {
        let mut raw: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for key in self.outbox.iter().keys() {
            let key = key?;
            let end = key.iter().position(|b| *b == 0).unwrap_or(key.len());
            match raw.get_mut(&key[..end]) {
                Some(count) => *count += 1,
                None => {
                    raw.insert(key[..end].to_vec(), 1);
                }
            }
        }
        let mut counts = BTreeMap::new();
        for (raw_id, count) in raw {
            // One unreadable key must not stop every delivery: it is reported and left alone.
            match parse_id("outbox", &raw_id) {
                Ok(id) => {
                    counts.insert(id, count);
                }
                Err(e) => tracing::error!(
                    "{e}; {count} outbox entries under it are left alone (report this as a bug)"
                ),
            }
        }
        Ok(counts)
    }

    /// Everything waiting for `destination`, oldest loss first.
    pub fn pending(&self, destination: &DestinationId) -> Result<Vec<Pending>, StoreError> {
        self.pending_batch(destination, usize::MAX)
    }

    /// The first `limit` losses waiting for `destination`, oldest first.
    pub fn pending_batch(
        &self,
        destination: &DestinationId,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError> {
        self.outbox
            .scan_prefix(outbox_prefix(destination))
            .values()
            .take(limit)
            .map(|value| {
                let value = value?;
                serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt {
                    tree: "outbox",
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// How many losses wait for `destination`.
    pub fn pending_count(&self, destination: &DestinationId) -> usize {
        self.outbox.scan_prefix(outbox_prefix(destination)).count()
    }

    /// Whether `loss` waits for `destination`.
    pub fn is_pending(
        &self,
        destination: &DestinationId,
        loss: &LossKey,
    ) -> Result<bool, StoreError> {
        Ok(self.outbox.contains_key(outbox_key(destination, loss))?)
    }

    /// Marks `losses` delivered to `destination`. Durable when this returns.
    ///
    /// Fails when an entry to remove is not there: something that believes it delivered a
    /// loss which the outbox does not hold would otherwise be sent again every cycle.
    pub async fn complete(
        &self,
        destination: &DestinationId,
        losses: &[LossKey],
    ) -> Result<(), StoreError> {
        let mut missing = 0;
        for key in losses {
            if self.outbox.remove(outbox_key(destination, key))?.is_none() {
                missing += 1;
            }
        }
        self.durable().await?;
        if missing > 0 {
            return Err(StoreError::NotCompleted {
                destination: destination.to_string(),
                asked: losses.len(),
                missing,
            });
        }
        Ok(())
    }

    /// Moves pending losses of `from` elsewhere, atomically: each listed loss leaves `from`
    /// and is queued for its targets (none, when it is already delivered elsewhere). Losses
    /// not listed stay with `from`. Returns how many losses left `from`.
    pub async fn reroute(
        &self,
        from: &DestinationId,
        moves: &[(Pending, Vec<DestinationId>)],
    ) -> Result<usize, StoreError> {
        let values: Vec<Vec<u8>> = moves
            .iter()
            .map(|(p, _)| {
                serde_json::to_vec(p).map_err(|e| StoreError::Corrupt {
                    tree: "outbox",
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        let mut batch = sled::Batch::default();
        for ((pending, targets), value) in moves.iter().zip(&values) {
            let key = pending.loss.key();
            for target in targets {
                batch.insert(outbox_key(target, &key), value.as_slice());
            }
            batch.remove(outbox_key(from, &key));
        }
        self.outbox.apply_batch(batch)?;
        if self
            .outbox
            .scan_prefix(outbox_prefix(from))
            .next()
            .is_none()
        {
            self.destinations.remove(from.to_string())?;
        }
        self.durable().await?;
        Ok(moves.len())
    }

    /// Discards everything pending for `destination`. Returns how many losses were dropped.
    pub async fn drop_pending(&self, destination: &DestinationId) -> Result<usize, StoreError> {
        let mut dropped = remove_prefix(&self.outbox, &outbox_prefix(destination))?;
        dropped += self.drop_prepared(destination)?;
        self.destinations.remove(destination.to_string())?;
        self.durable().await?;
        Ok(dropped)
    }
}

/// Removes every entry of `tree` under `prefix` in one batch; returns how many.
pub(super) fn remove_prefix(tree: &sled::Tree, prefix: &[u8]) -> Result<usize, StoreError> {
    let mut batch = sled::Batch::default();
    let mut removed = 0;
    for key in tree.scan_prefix(prefix).keys() {
        batch.remove(key?);
        removed += 1;
    }
    tree.apply_batch(batch)?;
    Ok(removed)
}

/// `<destination id>\0`: the id's text form never holds a NUL ([`DestinationId`] encodes it).
pub(super) fn outbox_prefix(destination: &DestinationId) -> Vec<u8> {
    let mut prefix = destination.to_string().into_bytes();
    prefix.push(0);
    prefix
}

pub(super) fn outbox_key(destination: &DestinationId, loss: &LossKey) -> Vec<u8> {
    let mut key = outbox_prefix(destination);
    key.extend_from_slice(loss.as_bytes());
    key
}

pub(super) fn parse_id(tree: &'static str, bytes: &[u8]) -> Result<DestinationId, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { tree, reason };
    std::str::from_utf8(bytes)
        .map_err(|e| corrupt(e.to_string()))?
        .parse()
        .map_err(|e: crate::destination::BadDestinationId| corrupt(e.to_string()))
}
