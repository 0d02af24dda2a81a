//! Corps: one WeCom corp and its Weiban account, as one config serves several (`[[corp]]`).
//!
//! A corp is known by its [`CorpName`] everywhere: in its store namespace, in a `corp` field on
//! every log line it causes, in a `corp` label on every metric, in `/healthz`, and in
//! `--corp`. A config without `[[corp]]` tables is one corp named [`CorpName::DEFAULT`], whose
//! store namespace is the whole store as the single-corp release wrote it.
//!
//! Past one machine, [`Shard`] splits the corps of one config between daemons: a corp belongs
//! to the shard its name's stable hash falls in, so every daemon of `N` decides alike without
//! talking to the others.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A corp's `name`: letters, digits, `-` and `_`, at most 64 bytes, so that it is safe in a
/// store tree name, a metric label, a log field and a file name. Cheap to clone.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct CorpName(Arc<str>);

impl TryFrom<String> for CorpName {
    type Error = CorpError;
    fn try_from(name: String) -> Result<Self, CorpError> {
        name.parse()
    }
}

impl From<CorpName> for String {
    fn from(corp: CorpName) -> String {
        corp.0.to_string()
    }
}

/// Why a corp name or a shard cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorpError {
    #[error(
        "`{0}` is not a corp name: use 1 to 64 letters, digits, `-` or `_` (it names the corp's store namespace, metrics and logs)"
    )]
    BadName(String),
    #[error("`{0}` is not a shard: write I/N with 0 <= I < N, e.g. `--shard 0/3` for the first of three")]
    BadShard(String),
}

impl CorpName {
    /// The corp a config without `[[corp]]` tables is.
    pub const DEFAULT: &'static str = "default";

    /// The corp of a single-corp config.
    pub fn default_corp() -> Self {
        Self(Arc::from(Self::DEFAULT))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the corp of a single-corp config, whose store trees keep their names.
    pub fn is_default(&self) -> bool {
        &*self.0 == Self::DEFAULT
    }

    /// A stable hash of the name (xxh3, the same on every machine and release): what a
    /// shard is chosen by.
    fn stable_hash(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(self.0.as_bytes())
    }
}

impl FromStr for CorpName {
    type Err = CorpError;

    fn from_str(name: &str) -> Result<Self, CorpError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(Arc::from(name)))
        } else {
            Err(CorpError::BadName(name.to_owned()))
        }
    }
}

impl fmt::Display for CorpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `run --shard I/N`: this daemon serves the corps whose name hashes to `I` modulo `N`.
/// Indexes count from 0, like a StatefulSet's ordinals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Whether `corp` is this shard's.
    pub fn serves(&self, corp: &CorpName) -> bool {
        corp.stable_hash() % self.count == self.index
    }
}

impl FromStr for Shard {
    type Err = CorpError;

    fn from_str(text: &str) -> Result<Self, CorpError> {
        let bad = || CorpError::BadShard(text.to_owned());
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: u64 = index.trim().parse().map_err(|_| bad())?;
        let count: u64 = count.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_for_trees_labels_and_files() {
        for good in ["default", "acme", "brand-2", "a_b", "X9"] {
            assert!(good.parse::<CorpName>().is_ok(), "{good}");
        }
        for bad in ["", "a b", "a/b", "名字", "a.b", &"x".repeat(65)] {
            let err = bad.parse::<CorpName>().unwrap_err().to_string();
            assert!(err.contains("letters, digits"), "{err}");
        }
    }

    #[test]
    fn shards_parse_and_refuse_what_cannot_be() {
        assert_eq!("1/3".parse(), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "0/0", "1", "a/2", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_corp_is_served_by_exactly_one_shard_and_always_the_same() {
        let corps: Vec<CorpName> = (0..200)
            .map(|i| format!("corp-{i}").parse().unwrap())
            .collect();
        for count in 1..=5 {
            let shards: Vec<Shard> = (0..count).map(|index| Shard { index, count }).collect();
            for corp in &corps {
                let serving = shards.iter().filter(|s| s.serves(corp)).count();
                assert_eq!(serving, 1, "{corp} in {count} shards");
            }
        }
        // The hash is part of the contract between daemons and releases: pinned.
        let hashes: Vec<u64> = ["acme", "globex", "initech"]
            .iter()
            .map(|n| n.parse::<CorpName>().unwrap().stable_hash())
            .collect();
        assert_eq!(
            hashes,
            [
                4948779126678378721,
                1451303885184493359,
                15306131437595353438
            ]
        );
    }
}
