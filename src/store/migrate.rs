//! Store format upgrades, run when the daemon (or a command) opens a store with its config.
//!
//! Format 1 (release 0.1) knew a route's robots by their position in `wecom_webhooks` and a
//! mailbox by its address as written, and its loss keys put a NUL between customer and staff
//! id. Format 2 knows a robot by the fingerprint of its key, a mailbox by its normalised
//! address, and length-prefixes the customer id ([`LossKey`]). Opening a format-1 store maps
//! every outbox entry, destination state and ledger entry to the new ids through the config it
//! is opened with, in one transaction, and then records format 2: a crash leaves the store
//! wholly old or wholly new. Format 3 adds the outbox's page records (`outbox_pages`,
//! `outbox_delivered`): a format-2 store has none, so it becomes format 3 as it is. A store of
//! a format newer than this release knows is refused, not read: an older release would pass
//! over records it does not know, and the losses in them would wait unseen. A position the config no longer has keeps its old id, so its
//! losses show as stranded in `state pending` instead of going to another robot.

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::{Pending, Store, StoreError};
use crate::config::Config;
use crate::destination::{DestinationId, DestinationKind};
use crate::loss::LossKey;
use crate::transform::Router;

/// The format this release writes.
const FORMAT: u8 = 3;
pub(super) const FORMAT_KEY: &[u8] = b"format";

impl Store {
    /// Upgrades the store to this release's format; returns how many records moved.
    pub(crate) fn migrate(&self, config: &Config) -> Result<usize, StoreError> {
        let format = self.meta.get(FORMAT_KEY)?.and_then(|v| v.first().copied());
        match format {
            Some(found) if found > FORMAT => {
                return Err(StoreError::NewerFormat {
                    found,
                    known: FORMAT,
                })
            }
            Some(FORMAT) => return Ok(0),
            // Format 3 only adds trees: nothing moves.
            Some(2) => {
                self.meta.insert(FORMAT_KEY, &[FORMAT])?;
                self.db.flush()?;
                return Ok(0);
            }
            _ => {}
        }
        // Page records are this format's own: a store that holds any is not format 1.
        let fresh = self.outbox.is_empty()
            && self.outbox_pages.is_empty()
            && self.destinations.is_empty()
            && self.ledger.is_empty();
        let moved = if fresh {
            0
        } else {
            self.migrate_from_1(config)?
        };
        self.meta.insert(FORMAT_KEY, &[FORMAT])?;
        self.db.flush()?;
        if moved > 0 {
            tracing::info!(moved, "store upgraded to format {FORMAT}: robots are known by their key now, not their position");
        }
        Ok(moved)
    }

    fn migrate_from_1(&self, config: &Config) -> Result<usize, StoreError> {
        let outbox: Vec<(sled::IVec, sled::IVec)> = self.outbox.iter().collect::<Result<_, _>>()?;
        let states: Vec<(sled::IVec, sled::IVec)> =
            self.destinations.iter().collect::<Result<_, _>>()?;
        let ledger: Vec<(sled::IVec, sled::IVec)> = self
            .ledger
            .scan_prefix(b"sent\0")
            .collect::<Result<_, _>>()?;
        let moved = (&self.outbox, &self.destinations, &self.ledger).transaction(
            |(outbox_tree, states_tree, ledger_tree)| {
                let mut moved = 0;
                for (key, value) in &outbox {
                    let Some((id, loss)) = split_outbox_key(key) else {
                        continue;
                    };
                    let new_id = upgrade_id(config, &id);
                    let new_loss =
                        LossKey::from_legacy(loss).unwrap_or_else(|| LossKey::from_bytes(loss));
                    let mut pending: Pending = match serde_json::from_slice(value) {
                        Ok(p) => p,
                        Err(_) => continue,
                    };
                    pending.robots = robots_of(config, &id.route);
                    let value = serde_json::to_vec(&pending).map_err(|e| {
                        ConflictableTransactionError::Abort(StoreError::Corrupt {
                            tree: "outbox",
                            reason: e.to_string(),
                        })
                    })?;
                    outbox_tree.remove(key)?;
                    outbox_tree.insert(super::outbox::outbox_key(&new_id, &new_loss), value)?;
                    moved += 1;
                }
                for (key, value) in &states {
                    let Some(id) = std::str::from_utf8(key).ok().and_then(|t| t.parse().ok())
                    else {
                        continue;
                    };
                    states_tree.remove(key)?;
                    states_tree.insert(upgrade_id(config, &id).to_string().as_bytes(), value)?;
                    moved += 1;
                }
                for (key, value) in &ledger {
                    let Some(text) = std::str::from_utf8(key).ok() else {
                        continue;
                    };
                    let Some((head, id)) = text.rsplit_once('\0') else {
                        continue;
                    };
                    let Ok(id) = id.parse::<DestinationId>() else {
                        continue;
                    };
                    ledger_tree.remove(key)?;
                    let new_key = format!("{head}\0{}", upgrade_id(config, &id));
                    ledger_tree.insert(new_key.as_bytes(), value)?;
                    moved += 1;
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(moved)
            },
        );
        moved.map_err(|e: TransactionError<StoreError>| e.into())
    }
}

/// `<id>\0<loss key>` as format 1 wrote it.
fn split_outbox_key(key: &[u8]) -> Option<(DestinationId, &[u8])> {
    let end = key.iter().position(|b| *b == 0)?;
    let id = std::str::from_utf8(&key[..end]).ok()?.parse().ok()?;
    Some((id, &key[end + 1..]))
}

/// A format-1 id in format 2: a robot position becomes its key's fingerprint, an address its
/// normalised form; a position the config no longer has stays as it was (stranded, visible).
fn upgrade_id(config: &Config, id: &DestinationId) -> DestinationId {
    match id.kind {
        DestinationKind::Wecom => id
            .arg
            .parse::<usize>()
            .ok()
            .and_then(|i| config.route(&id.route)?.wecom_webhooks.get(i))
            .map_or_else(
                || id.clone(),
                |url| DestinationId::robot(&id.route, url.expose()),
            ),
        DestinationKind::Email => DestinationId::mailbox(&id.route, &id.arg),
        _ => id.clone(),
    }
}

/// The robots format 1 queued every loss of `route` for: all of them, together.
fn robots_of(config: &Config, route: &str) -> Vec<String> {
    config
        .route(route)
        .map(Router::own_destinations)
        .unwrap_or_default()
        .into_iter()
        .filter(|id| id.kind == DestinationKind::Wecom)
        .map(|id| id.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = "[weiban]\ncorp_id = \"c\"\nsecret = \"s\"\n[schedule]\ncron = \"* * * * *\"\n[[route]]\nname = \"r\"\naudience = \"managers\"\nwecom_webhooks = [\"http://h/send?key=k\"]\n";
        Config::from_toml(text, std::path::Path::new("t.toml"), &|_| None).unwrap()
    }

    /// A format-2 store becomes format 3 as it is; a newer store is refused with what to do.
    #[test]
    fn format_2_becomes_3_and_a_newer_store_is_refused() {
        let store = Store::temporary().unwrap();
        store.meta.insert(FORMAT_KEY, &[2]).unwrap();
        store.destinations.insert(b"x", b"{}".as_slice()).unwrap();
        assert_eq!(store.migrate(&config()).unwrap(), 0);
        assert_eq!(
            store.meta.get(FORMAT_KEY).unwrap().unwrap().as_ref(),
            [FORMAT]
        );
        assert!(
            store.destinations.contains_key(b"x").unwrap(),
            "nothing moved"
        );

        store.meta.insert(FORMAT_KEY, &[FORMAT + 1]).unwrap();
        let err = store.migrate(&config()).unwrap_err().to_string();
        assert!(err.contains("newer") && err.contains("format 4"), "{err}");
    }
}
