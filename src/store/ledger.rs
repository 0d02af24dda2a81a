//! The ledger: what was produced once, and the staff-deletion counts.
//!
//! - `checked\0NAME`: when a report was first seen in the config (its periods start there).
//! - `produced\0NAME\0PERIOD`: a report's period, or a staff-deletion alert's day
//!   (`alert:ROUTE:STAFF`), was queued in the outbox; written in one transaction with the
//!   queued messages ([`super::prepared`]), so a period or an alert is produced once. How far
//!   delivery got is the outbox's business, not the ledger's.
//! - `sent\0NAME\0PERIOD\0DESTINATION`: written by release 0.1, which tracked delivery here;
//!   read only as "produced", so an upgrade sends nothing twice.
//! - `deletes\0DAY\0STAFF`: staff deletions per day for `staff_delete_alert`, counted before
//!   the losses are recorded as seen, so a crash in between can only count a loss twice,
//!   never miss it.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// Whether a release 0.1 delivery entry (`{"done": true, …}`) is finished.
fn legacy_done(value: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(value)
        .is_ok_and(|v| v["done"].as_bool() == Some(true))
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
    /// When the report `name` with periods of `kind` was first seen in the config: its
    /// periods start after this. A report whose period kind changed starts again (its old
    /// periods are not the new kind's). Release 0.1 kept `checked\0NAME`, the last time the
    /// crontab was handled, which reads the same way for the kind it had.
    pub fn report_since(
        &self,
        name: &str,
        kind: crate::config::PeriodKind,
    ) -> Result<Option<i64>, StoreError> {
        let read = |key: String| -> Result<Option<i64>, StoreError> {
            Ok(self
                .ledger
                .get(key)?
                .and_then(|v| v.as_ref().try_into().ok().map(i64::from_be_bytes)))
        };
        match read(format!("since\0{name}\0{kind:?}"))? {
            Some(since) => Ok(Some(since)),
            None if self
                .ledger
                .scan_prefix(format!("since\0{name}\0"))
                .next()
                .is_none() =>
            {
                // Release 0.1's anchor, kept from now on under the kind it had.
                let legacy = read(format!("checked\0{name}"))?;
                if let Some(since) = legacy {
                    self.ledger
                        .insert(format!("since\0{name}\0{kind:?}"), &since.to_be_bytes())?;
                }
                Ok(legacy)
            }
            None => Ok(None),
        }
    }

    /// Records when the report `name` with periods of `kind` was first seen. Durable when
    /// this returns.
    pub async fn set_report_since(
        &self,
        name: &str,
        kind: crate::config::PeriodKind,
        at: i64,
    ) -> Result<(), StoreError> {
        self.ledger
            .insert(format!("since\0{name}\0{kind:?}"), &at.to_be_bytes())?;
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
        // Release 0.1: produced when every destination it began had it whole; one it had not
        // finished makes the period due again, and `legacy_delivered` spares the others.
        let mut began = false;
        for item in self.ledger.scan_prefix(format!("sent\0{name}\0{period}\0")) {
            let (_, value) = item?;
            began = true;
            if !legacy_done(&value) {
                return Ok(false);
            }
        }
        Ok(began)
    }

    /// Whether release 0.1 delivered `name`'s `period` to `destination` whole.
    pub fn legacy_delivered(
        &self,
        name: &str,
        period: &str,
        destination: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .ledger
            .get(format!("sent\0{name}\0{period}\0{destination}"))?
            .is_some_and(|value| legacy_done(&value)))
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

    #[tokio::test]
    async fn a_period_is_produced_when_marked_or_sent_by_release_0_1() {
        let store = Store::temporary().unwrap();
        assert!(!store.report_produced("weekly", "a..b").unwrap());
        let produced = super::super::Produced {
            producer: "weekly".into(),
            period: "a..b".into(),
        };
        store.queue_produced(&produced, &[], 5).await.unwrap();
        assert!(store.report_produced("weekly", "a..b").unwrap());
        // Release 0.1 kept per-destination delivery entries here.
        let done = br#"{"sent":["summary-1"],"done":true,"at":5}"#.as_slice();
        let half = br#"{"sent":["summary-1"],"done":false,"at":5}"#.as_slice();
        store
            .ledger
            .insert("sent\0weekly\0c..d\0managers/wecom/0", done)
            .unwrap();
        assert!(store.report_produced("weekly", "c..d").unwrap());
        store
            .ledger
            .insert("sent\0weekly\0c..d\0managers/wecom/1", half)
            .unwrap();
        assert!(
            !store.report_produced("weekly", "c..d").unwrap(),
            "one destination unfinished: due again"
        );
        assert!(store
            .legacy_delivered("weekly", "c..d", "managers/wecom/0")
            .unwrap());
        assert!(!store
            .legacy_delivered("weekly", "c..d", "managers/wecom/1")
            .unwrap());
        assert!(
            !store.report_produced("weekly", "c..").unwrap(),
            "no prefix match"
        );
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
