//! Corps' namespaces in one store: which trees are whose, and moving one corp's between
//! stores (`state export` / `state import`, when a corp moves to another shard).
//!
//! A namespace is the same tree names under a prefix: none for the corp named `default`
//! (so a store written by the single-corp release is that corp's, unchanged), `corp/NAME/`
//! for any other. An export is one JSON object per line: a header naming the corp and the
//! format, then `{"tree", "key", "value"}` records with base64 keys and values. An import
//! writes every record in one transaction into a namespace that must be empty, so a crash
//! or a refused file leaves the target as it was.

use std::io::{BufRead, Write};
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::{Store, StoreError};
use crate::corp::CorpName;

/// Every tree a namespace holds, by its name without prefix.
const TREES: [&str; 10] = [
    "seen_minutely",
    "seen_hourly",
    "outbox",
    "outbox_pages",
    "outbox_delivered",
    "destinations",
    "meta",
    "ledger",
    "held",
    "prepared",
];
/// The export file's first line says what it is.
const EXPORT_FORMAT: &str = "churn-alert-namespace/1";

fn prefix(corp: &CorpName) -> String {
    if corp.is_default() {
        String::new()
    } else {
        format!("corp/{corp}/")
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    corp: String,
}

#[derive(Serialize, Deserialize)]
struct Record {
    tree: String,
    key: String,
    value: String,
}

/// Why a namespace could not be exported or imported.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read or write the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line} of the export is not a churn-alert namespace record: {reason}")]
    BadRecord { line: usize, reason: String },
    #[error(
        "the store already holds data of corp `{0}`; an import goes only into an empty namespace (export it first if it matters, or import into another store)"
    )]
    NotEmpty(CorpName),
}

/// The corp an export file was written from (its header), to import it as the same corp.
pub(crate) fn exported_corp(path: &std::path::Path) -> Result<String, NamespaceError> {
    let file = std::fs::File::open(path)?;
    let mut first = String::new();
    std::io::BufReader::new(file).read_line(&mut first)?;
    let header: Header = serde_json::from_str(&first).map_err(|e| NamespaceError::BadRecord {
        line: 1,
        reason: e.to_string(),
    })?;
    Ok(header.corp)
}

impl Store {
    /// The store of `corp`: the same database, the corp's own trees.
    pub fn corp(&self, corp: &CorpName) -> Result<Store, StoreError> {
        Self::with_trees(
            self.db.clone(),
            self.flushes.clone(),
            Arc::clone(&self.open),
            self.path.clone(),
            &prefix(corp),
        )
    }

    /// The corps this store holds anything of, in name order.
    pub fn corps(&self) -> Result<Vec<CorpName>, StoreError> {
        let mut corps = std::collections::BTreeSet::new();
        for name in self.db.tree_names() {
            let name = String::from_utf8_lossy(&name).into_owned();
            let corp = match name.strip_prefix("corp/") {
                Some(rest) => rest.split('/').next().and_then(|c| c.parse().ok()),
                None if TREES.contains(&name.as_str()) => Some(CorpName::default_corp()),
                None => None,
            };
            if let Some(corp) = corp {
                if !corps.contains(&corp) && !self.corp(&corp)?.is_empty() {
                    corps.insert(corp);
                }
            }
        }
        Ok(corps.into_iter().collect())
    }

    /// Whether this namespace holds nothing but the format mark that opening it writes.
    pub fn is_empty(&self) -> bool {
        let only_format = self
            .meta
            .iter()
            .keys()
            .all(|key| key.is_ok_and(|key| key.as_ref() == super::migrate::FORMAT_KEY));
        only_format
            && self
                .trees()
                .iter()
                .filter(|(name, _)| *name != "meta")
                .all(|(_, tree)| tree.is_empty())
    }

    fn trees(&self) -> [(&'static str, &sled::Tree); 10] {
        [
            ("seen_minutely", &self.seen),
            ("seen_hourly", &self.seen_hourly),
            ("outbox", &self.outbox),
            ("outbox_pages", &self.outbox_pages),
            ("outbox_delivered", &self.outbox_delivered),
            ("destinations", &self.destinations),
            ("meta", &self.meta),
            ("ledger", &self.ledger),
            ("held", &self.held),
            ("prepared", &self.prepared),
        ]
    }

    /// Writes this namespace (of `corp`) to `out`; returns how many records.
    pub fn export(&self, corp: &CorpName, out: &mut dyn Write) -> Result<usize, NamespaceError> {
        let header = Header {
            format: EXPORT_FORMAT.into(),
            corp: corp.to_string(),
        };
        writeln!(out, "{}", json(&header))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut records = 0;
        for (name, tree) in self.trees() {
            for item in tree.iter() {
                let (key, value) = item.map_err(StoreError::from)?;
                let record = Record {
                    tree: name.into(),
                    key: b64.encode(&key),
                    value: b64.encode(&value),
                };
                writeln!(out, "{}", json(&record))?;
                records += 1;
            }
        }
        out.flush()?;
        Ok(records)
    }

    /// Reads an export into this namespace (of `corp`), which must be empty, in one
    /// transaction; returns how many records and the corp the file was exported from.
    pub fn import(
        &self,
        corp: &CorpName,
        input: &mut dyn BufRead,
    ) -> Result<(usize, String), NamespaceError> {
        if !self.is_empty() {
            return Err(NamespaceError::NotEmpty(corp.clone()));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let bad = |line: usize, reason: String| NamespaceError::BadRecord { line, reason };
        let mut lines = input.lines();
        let header: Header = match lines.next() {
            Some(line) => serde_json::from_str(&line?).map_err(|e| bad(1, e.to_string()))?,
            None => return Err(bad(1, "the file is empty".into())),
        };
        if header.format != EXPORT_FORMAT {
            return Err(bad(
                1,
                format!("format `{}`, expected `{EXPORT_FORMAT}`", header.format),
            ));
        }
        let mut records: Vec<(usize, Vec<u8>, Vec<u8>)> = Vec::new();
        for (i, line) in lines.enumerate() {
            let number = i + 2;
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let record: Record =
                serde_json::from_str(&line).map_err(|e| bad(number, e.to_string()))?;
            let tree = TREES
                .iter()
                .position(|t| *t == record.tree)
                .ok_or_else(|| bad(number, format!("no tree is named `{}`", record.tree)))?;
            let key = b64
                .decode(&record.key)
                .map_err(|e| bad(number, e.to_string()))?;
            let value = b64
                .decode(&record.value)
                .map_err(|e| bad(number, e.to_string()))?;
            records.push((tree, key, value));
        }
        let trees: Vec<sled::Tree> = self.trees().iter().map(|(_, t)| (*t).clone()).collect();
        trees
            .as_slice()
            .transaction(|trees| {
                for (tree, key, value) in &records {
                    trees[*tree].insert(key.as_slice(), value.as_slice())?;
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(StoreError::from)?;
        self.db.flush().map_err(StoreError::from)?;
        Ok((records.len(), header.corp))
    }

    /// Deletes everything of this namespace (after an export that moved it elsewhere).
    pub fn clear(&self) -> Result<(), StoreError> {
        for (_, tree) in self.trees() {
            tree.clear()?;
        }
        self.db.flush()?;
        Ok(())
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
