//! The report ledger: which report (or anomaly alert) for which period reached which
//! destination, and how far it got.
//!
//! A report is several messages (summary parts, chart, spreadsheet), each with a label
//! (`summary-1`, `chart`, `list`). Before the first is sent, an entry `(report, period,
//! destination)` is written with nothing sent; after each message the destination accepted,
//! its label is added; after the last, the entry is marked done. A run for a period whose
//! entry is done sends nothing; a run after a crash or a refusal sends only the messages whose
//! labels are missing, so a report re-rendered from fresher data still resumes at the right
//! message. Every write is flushed before the next send, so a crash repeats at most the
//! message in flight.
//!
//! The same tree counts staff deletions per day for the anomaly alert (`staff_delete_alert`):
//! key `deletes\0DAY\0STAFF`, counted before the losses are recorded as seen, so a crash in
//! between can only count a loss twice, never miss it.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::destination::DestinationId;

/// Which delivery an entry is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LedgerKey {
    /// The report's name, or `alert:ROUTE:STAFF` for an anomaly alert.
    pub report: String,
    /// The period's key (`2026-11-16..2026-11-22`).
    pub period: String,
    pub destination: DestinationId,
}

impl LedgerKey {
    fn encode(&self) -> Vec<u8> {
        format!(
            "sent\0{}\0{}\0{}",
            self.report, self.period, self.destination
        )
        .into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.strip_prefix("sent\0")?.splitn(3, '\0');
        Some(Self {
            report: parts.next()?.to_owned(),
            period: parts.next()?.to_owned(),
            destination: parts.next()?.parse().ok()?,
        })
    }
}

/// How far a delivery got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Labels of the messages the destination accepted.
    #[serde(default)]
    pub sent: Vec<String>,
    /// Every message was accepted.
    pub done: bool,
    /// When the last attempt began or ended (unix seconds).
    pub at: i64,
    /// When the first attempt began.
    #[serde(default)]
    pub since: i64,
    /// Attempts that ended in a refusal.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt stopped, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Staff deletions counted for one staff member on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteCount {
    pub count: usize,
    pub staff_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub departments: Vec<String>,
    /// The latest few customers, for the alert.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customers: Vec<String>,
}

/// One loss the staff member ended, to count.
#[derive(Debug, Clone, Copy)]
pub struct StaffDelete<'a> {
    pub staff_id: &'a str,
    pub staff_name: &'a str,
    pub departments: &'a [String],
    /// The customer's name as shown.
    pub customer: &'a str,
}

/// Customers an anomaly count keeps by name (the latest).
const KEPT_CUSTOMERS: usize = 5;

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree: "ledger",
        reason: e.to_string(),
    }
}

impl Store {
    pub fn progress(&self, key: &LedgerKey) -> Result<Option<Progress>, StoreError> {
        self.ledger
            .get(key.encode())?
            .map(|v| serde_json::from_slice(&v).map_err(corrupt))
            .transpose()
    }

    /// Records how far a delivery got. Durable when this returns.
    pub async fn set_progress(
        &self,
        key: &LedgerKey,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        self.ledger
            .insert(key.encode(), serde_json::to_vec(progress).map_err(corrupt)?)?;
        self.durable().await?;
        Ok(())
    }

    /// Every ledger entry not done yet.
    pub fn unfinished(&self) -> Result<Vec<(LedgerKey, Progress)>, StoreError> {
        let mut out = Vec::new();
        for item in self.ledger.scan_prefix(b"sent\0") {
            let (key, value) = item?;
            let progress: Progress = serde_json::from_slice(&value).map_err(corrupt)?;
            if progress.done {
                continue;
            }
            match LedgerKey::decode(&key) {
                Some(key) => out.push((key, progress)),
                None => tracing::warn!("skipping an unreadable report ledger key"),
            }
        }
        Ok(out)
    }

    /// When the report `name` was first seen in the config: its periods start after this.
    /// (Release 0.1 kept here the last time the crontab was handled, which reads the same way:
    /// every period that ended before it was handled then.)
    pub fn report_since(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .ledger
            .get(format!("checked\0{name}"))?
            .and_then(|v| v.as_ref().try_into().ok().map(i64::from_be_bytes)))
    }

    /// Records when the report `name` was first seen. Durable when this returns.
    pub async fn set_report_since(&self, name: &str, at: i64) -> Result<(), StoreError> {
        self.ledger
            .insert(format!("checked\0{name}"), &at.to_be_bytes())?;
        self.durable().await?;
        Ok(())
    }

    /// Whether the report `name` was produced for `period`: recorded as such, or, from a
    /// store of an earlier release, with a delivery entry for it.
    pub fn report_produced(&self, name: &str, period: &str) -> Result<bool, StoreError> {
        if self
            .ledger
            .contains_key(format!("produced\0{name}\0{period}"))?
        {
            return Ok(true);
        }
        let earlier = format!("sent\0{name}\0{period}\0");
        Ok(self
            .ledger
            .scan_prefix(earlier)
            .next()
            .transpose()?
            .is_some())
    }

    /// Records that the report `name` was produced for `period` at `at`, so that it is never
    /// produced again by the schedule. Durable when this returns.
    pub async fn set_report_produced(
        &self,
        name: &str,
        period: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        self.ledger
            .insert(format!("produced\0{name}\0{period}"), &at.to_be_bytes())?;
        self.durable().await?;
        Ok(())
    }

    /// Adds staff deletions to `day`'s counts (one entry per loss). Durable when this returns.
    pub async fn count_deletes(
        &self,
        day: &str,
        deletes: &[StaffDelete<'_>],
    ) -> Result<(), StoreError> {
        if deletes.is_empty() {
            return Ok(());
        }
        for delete in deletes {
            let key = format!("deletes\0{day}\0{}", delete.staff_id);
            let mut count: DeleteCount = match self.ledger.get(&key)? {
                Some(v) => serde_json::from_slice(&v).map_err(corrupt)?,
                None => DeleteCount::default(),
            };
            count.count += 1;
            count.staff_name = delete.staff_name.to_owned();
            count.departments = delete.departments.to_vec();
            count.customers.push(delete.customer.to_owned());
            if count.customers.len() > KEPT_CUSTOMERS {
                count.customers.remove(0);
            }
            self.ledger
                .insert(key, serde_json::to_vec(&count).map_err(corrupt)?)?;
        }
        self.durable().await?;
        Ok(())
    }

    /// `day`'s deletion counts by staff id.
    pub fn deletes_on(&self, day: &str) -> Result<Vec<(String, DeleteCount)>, StoreError> {
        let prefix = format!("deletes\0{day}\0");
        let mut out = Vec::new();
        for item in self.ledger.scan_prefix(prefix.as_bytes()) {
            let (key, value) = item?;
            let staff = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            out.push((staff, serde_json::from_slice(&value).map_err(corrupt)?));
        }
        Ok(out)
    }

    /// Forgets deletion counts of days before `day` (`YYYY-MM-DD`).
    pub fn prune_deletes(&self, day: &str) -> Result<(), StoreError> {
        let end = format!("deletes\0{day}");
        for item in self.ledger.range(b"deletes\0".to_vec()..end.into_bytes()) {
            let (key, _) = item?;
            self.ledger.remove(key)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::DestinationKind;

    #[tokio::test]
    async fn progress_round_trips_and_done_entries_are_not_unfinished() {
        let store = Store::temporary().unwrap();
        let key = |period: &str| LedgerKey {
            report: "weekly".into(),
            period: period.into(),
            destination: DestinationId::new("managers", DestinationKind::Wecom, "0"),
        };
        let half = Progress {
            sent: vec!["summary-1".into()],
            at: 5,
            error: Some("refused".into()),
            ..Progress::default()
        };
        store.set_progress(&key("a..b"), &half).await.unwrap();
        store
            .set_progress(
                &key("c..d"),
                &Progress {
                    done: true,
                    ..Progress::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(store.progress(&key("a..b")).unwrap(), Some(half));
        let unfinished = store.unfinished().unwrap();
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].0, key("a..b"));
    }

    #[tokio::test]
    async fn deletes_count_per_day_and_staff() {
        let store = Store::temporary().unwrap();
        let delete = |customer| StaffDelete {
            staff_id: "amy",
            staff_name: "Amy",
            departments: &[],
            customer,
        };
        store
            .count_deletes("2026-11-25", &[delete("c1"), delete("c2")])
            .await
            .unwrap();
        store
            .count_deletes("2026-11-26", &[delete("c3")])
            .await
            .unwrap();
        let counts = store.deletes_on("2026-11-25").unwrap();
        assert_eq!(counts.len(), 1);
        assert_eq!(counts[0].1.count, 2);
        store.prune_deletes("2026-11-26").unwrap();
        assert!(store.deletes_on("2026-11-25").unwrap().is_empty());
        assert_eq!(store.deletes_on("2026-11-26").unwrap()[0].1.count, 1);
    }
}
