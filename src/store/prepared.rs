//! The `prepared` tree: messages rendered ahead of delivery (a report's parts, a staff-deletion
//! alert), waiting for one destination each, delivered by the same stages as loss alerts.
//!
//! A producer (a report for a period, an alert for a staff member's day) queues its messages
//! for all its destinations and marks itself produced in the ledger in one transaction: a
//! crash leaves both or neither, and a period or an alert is produced once. Keys are
//! `<destination id>\0<produced key>\0<part number>` (the produced key holds no NUL), so a
//! destination's messages come out grouped by what produced them (by its name and period),
//! each one's parts in order. Delivery removes each
//! message once its destination accepted it; a refusal leaves it, and the destination's state
//! says when to try again. The robot's URL or the mailbox is not stored: it comes from the
//! config at send time, so no key reaches the store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::outbox::outbox_prefix;
use super::{Store, StoreError};
use crate::destination::DestinationId;

/// What is produced once: a report's period, or an alert's day (`report\0NAME\0PERIOD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    /// The report's name, or `alert:ROUTE:STAFF`.
    pub producer: String,
    /// The period's key, or the alert's day.
    pub period: String,
}

impl Produced {
    fn ledger_key(&self) -> String {
        format!("produced\0{}\0{}", self.producer, self.period)
    }

    fn part_key(&self, destination: &DestinationId, part: u32) -> Vec<u8> {
        let mut key = outbox_prefix(destination);
        key.extend_from_slice(format!("{}\u{1}{}", self.producer, self.period).as_bytes());
        key.push(0);
        key.extend_from_slice(&part.to_be_bytes());
        key
    }
}

/// One message waiting for its destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepared {
    /// What it belongs to, as `state pending` shows it (`客户流失周报 2026-11-16..2026-11-22`).
    pub what: String,
    /// The part (`summary-1`, `chart`, `list`, `email`, `alert`).
    pub label: String,
    /// Unix seconds when it was queued.
    pub queued_at: i64,
    pub body: PreparedBody,
    /// Every destination its producer queued it for (ids): a message moved from a destination
    /// that left the config (a fixed robot key, a fixed address) goes only to destinations
    /// that never had it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queued_for: Vec<String>,
    /// Why the destination refused this message for good (a file it will not take): it stays,
    /// visible in `state pending`, and is not tried again until `state retry`; the
    /// destination's other deliveries go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// A message's content, without its address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PreparedBody {
    Markdown {
        content: String,
    },
    Text {
        content: String,
    },
    Image {
        png: Bytes,
    },
    File {
        filename: String,
        bytes: Bytes,
    },
    Email {
        subject: String,
        text: String,
        html: String,
        files: Vec<PreparedFile>,
    },
}

/// A file that goes with an email.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreparedFile {
    pub filename: String,
    pub content_type: String,
    pub bytes: Bytes,
    /// Shown inside the HTML (`cid:ID`) rather than attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_id: Option<String>,
}

/// Bytes kept as base64 in the store's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bytes(pub std::sync::Arc<[u8]>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(|bytes| Bytes(bytes.into()))
            .map_err(serde::de::Error::custom)
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree: "prepared",
        reason: e.to_string(),
    }
}

impl Store {
    /// Queues `messages` for their destinations and marks `produced` in one transaction;
    /// `false` (and nothing queued) when it was produced before. Durable when this returns.
    pub async fn queue_produced(
        &self,
        produced: &Produced,
        messages: &[(DestinationId, Vec<Prepared>)],
        now: i64,
    ) -> Result<bool, StoreError> {
        let queued_for: Vec<String> = messages.iter().map(|(id, _)| id.to_string()).collect();
        let mut entries = Vec::new();
        for (destination, parts) in messages {
            for (part, message) in (0_u32..).zip(parts) {
                let message = Prepared {
                    queued_for: queued_for.clone(),
                    ..message.clone()
                };
                let value = serde_json::to_vec(&message).map_err(corrupt)?;
                entries.push((produced.part_key(destination, part), value));
            }
        }
        let marker = produced.ledger_key();
        let queued = (&self.prepared, &self.ledger).transaction(|(prepared, ledger)| {
            if ledger.get(marker.as_bytes())?.is_some() {
                return Ok(false);
            }
            for (key, value) in &entries {
                prepared.insert(key.as_slice(), value.as_slice())?;
            }
            ledger.insert(marker.as_bytes(), &now.to_be_bytes())?;
            Ok::<_, ConflictableTransactionError<StoreError>>(true)
        })?;
        self.durable().await?;
        Ok(queued)
    }

    /// The messages waiting for `destination`, in order, with their keys.
    pub fn prepared_for(
        &self,
        destination: &DestinationId,
    ) -> Result<Vec<(Vec<u8>, Prepared)>, StoreError> {
        self.prepared
            .scan_prefix(outbox_prefix(destination))
            .map(|item| {
                let (key, value) = item?;
                let message = serde_json::from_slice(&value).map_err(corrupt)?;
                Ok((key.to_vec(), message))
            })
            .collect()
    }

    /// Moves the message at `key` (waiting for `from`) to each of `to`, in one transaction.
    /// Durable when this returns.
    pub async fn move_prepared(
        &self,
        from: &DestinationId,
        key: &[u8],
        message: &Prepared,
        to: &[DestinationId],
    ) -> Result<(), StoreError> {
        let rest = key
            .strip_prefix(outbox_prefix(from).as_slice())
            .ok_or_else(|| corrupt("a prepared key outside its destination"))?;
        let mut moved = message.clone();
        moved.queued_for.extend(to.iter().map(ToString::to_string));
        // The old destination's refusal says nothing about the new one.
        moved.refused = None;
        let value = serde_json::to_vec(&moved).map_err(corrupt)?;
        let mut batch = sled::Batch::default();
        for destination in to {
            let mut new_key = outbox_prefix(destination);
            new_key.extend_from_slice(rest);
            batch.insert(new_key, value.clone());
        }
        batch.remove(key);
        self.prepared.apply_batch(batch)?;
        self.durable().await
    }

    /// Records that `key`'s destination refused it for good. Durable when this returns.
    pub async fn refuse_prepared(&self, key: &[u8], reason: &str) -> Result<(), StoreError> {
        let Some(value) = self.prepared.get(key)? else {
            return Ok(());
        };
        let mut message: Prepared = serde_json::from_slice(&value).map_err(corrupt)?;
        message.refused = Some(reason.to_owned());
        self.prepared
            .insert(key, serde_json::to_vec(&message).map_err(corrupt)?)?;
        self.durable().await
    }

    /// Makes refused messages of `route` (every route: `None`) due again (`state retry`);
    /// returns how many.
    pub async fn retry_refused(&self, route: Option<&str>) -> Result<usize, StoreError> {
        let mut retried = 0;
        for item in self.prepared.iter() {
            let (key, value) = item?;
            let end = key.iter().position(|b| *b == 0).unwrap_or(key.len());
            let in_route = match route {
                None => true,
                Some(route) => super::outbox::parse_id("prepared", &key[..end])?.route == route,
            };
            let mut message: Prepared = serde_json::from_slice(&value).map_err(corrupt)?;
            if in_route && message.refused.take().is_some() {
                self.prepared
                    .insert(key, serde_json::to_vec(&message).map_err(corrupt)?)?;
                retried += 1;
            }
        }
        if retried > 0 {
            self.durable().await?;
        }
        Ok(retried)
    }

    /// How many messages wait, per destination.
    pub fn prepared_counts(&self) -> Result<BTreeMap<DestinationId, usize>, StoreError> {
        let mut counts = BTreeMap::new();
        for key in self.prepared.iter().keys() {
            let key = key?;
            let end = key.iter().position(|b| *b == 0).unwrap_or(key.len());
            match super::outbox::parse_id("prepared", &key[..end]) {
                Ok(id) => *counts.entry(id).or_insert(0) += 1,
                Err(e) => tracing::error!("{e}; a prepared message under it is left alone"),
            }
        }
        Ok(counts)
    }

    /// Marks one message delivered. Durable when this returns.
    pub async fn complete_prepared(&self, key: &[u8]) -> Result<(), StoreError> {
        self.prepared.remove(key)?;
        self.durable().await
    }

    /// Drops every message waiting for `destination`; returns how many.
    pub(super) fn drop_prepared(&self, destination: &DestinationId) -> Result<usize, StoreError> {
        super::outbox::remove_prefix(&self.prepared, &outbox_prefix(destination))
    }
}

/// The name of what produced a prepared message (a report's name, the alert's), read from
/// its key: `<destination>\0<producer>\u{1}<period>\0<part>`.
pub(crate) fn producer_of(key: &[u8]) -> Option<&str> {
    let start = key.iter().position(|b| *b == 0)? + 1;
    let rest = key.get(start..)?;
    let end = rest.iter().position(|b| *b == 1)?;
    std::str::from_utf8(&rest[..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_producer() {
        let produced = Produced {
            producer: "周报".into(),
            period: "2026-W48".into(),
        };
        let id = DestinationId::new("r", crate::destination::DestinationKind::Wecom, "k");
        assert_eq!(producer_of(&produced.part_key(&id, 3)), Some("周报"));
        assert_eq!(producer_of(b"no separators"), None);
    }

    fn message(label: &str) -> Prepared {
        Prepared {
            what: "客户流失周报 2026-11-16..2026-11-22".into(),
            label: label.into(),
            queued_at: 100,
            queued_for: Vec::new(),
            refused: None,
            body: PreparedBody::Image {
                png: Bytes(vec![137, 80, 78, 71].into()),
            },
        }
    }

    #[tokio::test]
    async fn a_period_is_queued_once_in_order_and_completed_part_by_part() {
        let store = Store::temporary().unwrap();
        let robot = DestinationId::robot("managers", "http://h/send?key=a");
        let produced = Produced {
            producer: "weekly".into(),
            period: "2026-11-16..2026-11-22".into(),
        };
        let parts = vec![message("summary-1"), message("chart"), message("list")];
        let messages = [(robot.clone(), parts.clone())];
        assert!(store
            .queue_produced(&produced, &messages, 100)
            .await
            .unwrap());
        assert!(
            !store
                .queue_produced(&produced, &messages, 200)
                .await
                .unwrap(),
            "a period is produced once"
        );
        let waiting = store.prepared_for(&robot).unwrap();
        let labels: Vec<&str> = waiting.iter().map(|(_, m)| m.label.as_str()).collect();
        assert_eq!(labels, ["summary-1", "chart", "list"]);
        assert_eq!(store.prepared_counts().unwrap()[&robot], 3);
        assert!(store
            .report_produced("weekly", "2026-11-16..2026-11-22")
            .unwrap());
        store.complete_prepared(&waiting[0].0).await.unwrap();
        assert_eq!(store.prepared_for(&robot).unwrap().len(), 2);
        let PreparedBody::Image { png } = &store.prepared_for(&robot).unwrap()[0].1.body else {
            panic!("an image");
        };
        assert_eq!(&png.0[..], [137, 80, 78, 71]);
        assert_eq!(store.drop_prepared(&robot).unwrap(), 2);
    }
}
