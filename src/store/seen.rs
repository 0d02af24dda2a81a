//! The compact form of remembered losses: minute buckets of fixed-size entries.
//!
//! A sled record per loss costs hundreds of bytes on disk and in memory; a retention of 90
//! days can hold millions of losses. So losses are remembered in one record per minute of
//! outflow time, whose value is a sorted array of 20-byte entries: the outflow time (8 bytes,
//! order-preserving), a 64-bit hash of the customer id and a 32-bit hash of the staff id
//! (xxh3, a stable algorithm, so stores survive upgrades). Looking a loss up is a binary
//! search; pruning by age drops whole buckets.
//!
//! Why minutes: a page is recorded by rewriting the buckets it touches, and a page of 100
//! losses spans minutes. Hour buckets (stores before 2026-12-02, tree `seen_hourly`, still read
//! and pruned, never written) made a backfill of 100 000 losses rewrite a 100 KB hour for
//! every page: a cost that grew with the window, not with the page.
//!
//! Two different losses are confused only if they left in the same second and their 96 bits
//! of hashes collide — about 1 in 10^28 per pair.

use std::collections::HashMap;

use xxhash_rust::xxh3::xxh3_64;

use super::StoreError;
use crate::loss::{time_prefix, Loss};

/// Bytes per remembered loss inside a bucket.
pub(crate) const ENTRY: usize = 20;
const BUCKET_SECS: i64 = 60;
/// The buckets of stores written before minute buckets (`seen_hourly`).
const LEGACY_BUCKET_SECS: i64 = 3600;

/// The key of the bucket holding losses that left at `outflow_at`.
pub(crate) fn bucket_key(outflow_at: i64) -> [u8; 8] {
    time_prefix(outflow_at.div_euclid(BUCKET_SECS) * BUCKET_SECS)
}

/// The key of the hour bucket of an older store holding losses that left at `outflow_at`.
pub(crate) fn legacy_bucket_key(outflow_at: i64) -> [u8; 8] {
    time_prefix(outflow_at.div_euclid(LEGACY_BUCKET_SECS) * LEGACY_BUCKET_SECS)
}

/// The entry of one loss.
pub(crate) fn entry(outflow_at: i64, customer_id: &str, staff_id: &str) -> [u8; ENTRY] {
    let mut out = [0u8; ENTRY];
    out[..8].copy_from_slice(&time_prefix(outflow_at));
    out[8..16].copy_from_slice(&customer_hash(customer_id));
    out[16..].copy_from_slice(&(xxh3_64(staff_id.as_bytes()) as u32).to_be_bytes());
    out
}

/// The customer part of an entry, for `state forget`.
pub(crate) fn customer_hash(customer_id: &str) -> [u8; 8] {
    xxh3_64(customer_id.as_bytes()).to_be_bytes()
}

/// Where `entry` is in the sorted `bucket` (`Ok`), or where it belongs (`Err`), in entries.
pub(crate) fn search(bucket: &[u8], entry: &[u8; ENTRY]) -> Result<usize, usize> {
    let (mut low, mut high) = (0, bucket.len() / ENTRY);
    while low < high {
        let mid = (low + high) / 2;
        match bucket[mid * ENTRY..(mid + 1) * ENTRY].cmp(entry.as_slice()) {
            std::cmp::Ordering::Less => low = mid + 1,
            std::cmp::Ordering::Greater => high = mid,
            std::cmp::Ordering::Equal => return Ok(mid),
        }
    }
    Err(low)
}

/// Inserts `entry` if absent; returns whether it was new.
pub(crate) fn insert(bucket: &mut Vec<u8>, entry: &[u8; ENTRY]) -> bool {
    match search(bucket, entry) {
        Ok(_) => false,
        Err(at) => {
            bucket.splice(at * ENTRY..at * ENTRY, entry.iter().copied());
            true
        }
    }
}

/// Keeps the entries for which `keep` holds; returns how many were removed.
pub(crate) fn retain(bucket: &mut Vec<u8>, keep: impl Fn(&[u8]) -> bool) -> usize {
    let before = bucket.len() / ENTRY;
    let kept: Vec<u8> = bucket
        .chunks_exact(ENTRY)
        .filter(|e| keep(e))
        .flatten()
        .copied()
        .collect();
    *bucket = kept;
    before - bucket.len() / ENTRY
}

/// Remembered losses in the store: looked up a page at a time, pruned by age, forgotten on
/// request, counted.
impl super::Store {
    /// Whether each of `losses` is remembered, reading each hour bucket they fall in once (a
    /// page's hundred losses share a few buckets).
    pub fn seen_of(&self, losses: &[Loss]) -> Result<Vec<bool>, StoreError> {
        let mut seen = Self::in_buckets(&self.seen, losses, bucket_key)?;
        if !self.seen_hourly.is_empty() {
            let older = Self::in_buckets(&self.seen_hourly, losses, legacy_bucket_key)?;
            seen.iter_mut().zip(older).for_each(|(s, o)| *s |= o);
        }
        Ok(seen)
    }

    /// Whether each loss is in `tree`, whose buckets `key` names; each bucket read once.
    pub(super) fn in_buckets<'l>(
        tree: &sled::Tree,
        losses: impl IntoIterator<Item = &'l Loss>,
        key: fn(i64) -> [u8; 8],
    ) -> Result<Vec<bool>, StoreError> {
        let mut buckets: HashMap<[u8; 8], Option<sled::IVec>> = HashMap::new();
        losses
            .into_iter()
            .map(|loss| {
                let key = key(loss.outflow_at);
                let bucket = match buckets.entry(key) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => e.insert(tree.get(key)?),
                };
                let entry = entry(loss.outflow_at, &loss.customer_id, &loss.staff_id);
                Ok(bucket.as_ref().is_some_and(|b| search(b, &entry).is_ok()))
            })
            .collect()
    }

    /// Whether a loss is remembered.
    pub fn is_seen(&self, loss: &Loss) -> Result<bool, StoreError> {
        Ok(self.seen_of(std::slice::from_ref(loss))?[0])
    }

    /// Forgets remembered losses that left before `cutoff` (unix seconds). Returns how many.
    pub async fn prune(&self, cutoff: i64) -> Result<usize, StoreError> {
        let pruned = Self::prune_tree(&self.seen, bucket_key(cutoff), cutoff)?
            + Self::prune_tree(&self.seen_hourly, legacy_bucket_key(cutoff), cutoff)?;
        if pruned > 0 {
            self.durable().await?;
        }
        Ok(pruned)
    }

    /// Drops the buckets of `tree` before `boundary`, the bucket holding the cutoff keeping
    /// its entries from `cutoff` on. Returns how many entries went.
    fn prune_tree(tree: &sled::Tree, boundary: [u8; 8], cutoff: i64) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut pruned = 0;
        for item in tree.range(..boundary.to_vec()) {
            let (key, bucket) = item?;
            pruned += bucket.len() / ENTRY;
            batch.remove(key);
        }
        if let Some(bucket) = tree.get(boundary)? {
            let mut bucket = bucket.to_vec();
            let limit = time_prefix(cutoff);
            let removed = retain(&mut bucket, |e| e[..8] >= limit[..]);
            if removed > 0 {
                pruned += removed;
                batch.insert(&boundary, bucket);
            }
        }
        if pruned > 0 {
            tree.apply_batch(batch)?;
        }
        Ok(pruned)
    }

    /// Forgets every remembered loss of `customer_id`, so it is reported again when seen again.
    pub async fn forget_customer(&self, customer_id: &str) -> Result<usize, StoreError> {
        let hash = customer_hash(customer_id);
        let mut forgotten = 0;
        for tree in [&self.seen, &self.seen_hourly] {
            let mut batch = sled::Batch::default();
            let mut removed_here = 0;
            for item in tree.iter() {
                let (key, bucket) = item?;
                let mut bucket = bucket.to_vec();
                let removed = retain(&mut bucket, |e| e[8..16] != hash[..]);
                if removed > 0 {
                    removed_here += removed;
                    batch.insert(key, bucket);
                }
            }
            if removed_here > 0 {
                tree.apply_batch(batch)?;
                forgotten += removed_here;
            }
        }
        if forgotten > 0 {
            self.durable().await?;
        }
        Ok(forgotten)
    }

    /// How many losses are remembered.
    pub(super) fn remembered(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        for bucket in self
            .seen
            .iter()
            .values()
            .chain(self.seen_hourly.iter().values())
        {
            total += bucket?.len() / ENTRY;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_sorted_unique_and_searchable() {
        let mut bucket = Vec::new();
        let a = entry(100, "c1", "s1");
        let b = entry(50, "c2", "s1");
        let c = entry(100, "c1", "s2");
        assert!(insert(&mut bucket, &a));
        assert!(insert(&mut bucket, &b));
        assert!(insert(&mut bucket, &c));
        assert!(!insert(&mut bucket, &a), "a loss is remembered once");
        assert_eq!(bucket.len(), 3 * ENTRY);
        assert!(search(&bucket, &b).is_ok() && search(&bucket, &c).is_ok());
        assert!(search(&bucket, &entry(100, "c1", "s3")).is_err());
        let removed = retain(&mut bucket, |e| e[8..16] != customer_hash("c1"));
        assert_eq!(removed, 2);
        assert_eq!(search(&bucket, &b), Ok(0));
    }

    #[test]
    fn buckets_are_minutes_older_ones_hours_and_both_sort_by_time() {
        assert_eq!(bucket_key(3600), bucket_key(3659));
        assert_ne!(bucket_key(3599), bucket_key(3600));
        assert_ne!(bucket_key(3600), bucket_key(3660));
        assert!(bucket_key(-1) < bucket_key(0));
        assert_eq!(legacy_bucket_key(3600), legacy_bucket_key(7199));
        assert_ne!(legacy_bucket_key(3599), legacy_bucket_key(3600));
        assert!(legacy_bucket_key(-1) < legacy_bucket_key(0));
    }
}
