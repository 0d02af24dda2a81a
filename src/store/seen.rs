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

use xxhash_rust::xxh3::xxh3_64;

use crate::loss::time_prefix;

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
