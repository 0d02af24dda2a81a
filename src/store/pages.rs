//! Outbox pages: the losses one recording (a group of poll pages, about 300 losses) queued for
//! one destination, in records of at most [`RECORD_LOSSES`] in the `outbox_pages` tree, keyed
//! `<destination id>\0<page id><first loss key>`; the records of one recording share its id.
//!
//! Recording 100 losses writes one record per destination instead of 100 entries: sled's cost
//! is per operation far more than per byte (BENCHMARKS.md, issue 20, third pass).
//! A page record is written once and never rewritten: what of it was delivered is a small
//! record of its own under the same key in `outbox_delivered` (a bit per entry), and
//! the page and that record leave together when the last of its losses is delivered. Rewriting
//! the page instead costs more than an entry per loss did: sled rewrites whole leaves of up to
//! 16 records, and page records are tens of kilobytes.
//!
//! A page record is a version byte, then for each loss its key and its [`super::Pending`]
//! (JSON) with their lengths (`u32`, big-endian) before them. Entries are read as bytes: only
//! the losses handed to a sink are ever decoded. Page ids come from sled's `generate_id`,
//! which only grows, across restarts too, so a destination's recordings are in the order they
//! were recorded (the records of one recording by their first loss).
//!
//! Single entries in the `outbox` tree (one per destination and loss) are still written where
//! losses are queued one by one (a reroute, a released hold) and by earlier releases; the
//! outbox is both ([`super::outbox`]).

use super::StoreError;

/// The first byte of every page record: the layout below.
const VERSION: u8 = 1;

/// The most losses one page record holds. A recording (a group of pages, about 300 losses)
/// is cut into records of this many, all under the recording's id. A delivery batch reads
/// whole records, so it reads less than a record beyond its size. And a record of 100 losses
/// (about 30 KB) stays below glibc's 128 KB threshold for `mmap`: records of 500 were read
/// (at the store's opening) through `mmap`, whose freeing raises that threshold, and left the
/// heap of the next idle daemon 0.6 MB larger (BENCHMARKS.md, seventh pass).
pub(super) const RECORD_LOSSES: usize = 100;

/// One loss in a page: its key and its `Pending` as JSON, borrowed from the record.
pub(super) type Entry<'a> = (&'a [u8], &'a [u8]);

/// The key of page `id` of a destination, whose first loss is `first`.
///
/// An id is unique only in the database that made it: a corp exported from another store
/// (`state export`/`import`) brings pages whose ids this store may make again. The first
/// loss tells such pages apart (a loss is new, so recorded, in one store at most once), so a
/// page is never overwritten by another and never inherits another's delivered mark.
///
/// `prefix` is the destination's, as the outbox spells it (`outbox_prefix`).
pub(super) fn page_key(prefix: Vec<u8>, id: u64, first: &[u8]) -> Vec<u8> {
    let mut key = prefix;
    key.extend_from_slice(&id.to_be_bytes());
    key.extend_from_slice(first);
    key
}

/// A page record holding `entries`.
pub(super) fn encode<'a>(entries: impl IntoIterator<Item = Entry<'a>>) -> Vec<u8> {
    let mut out = vec![VERSION];
    for (key, value) in entries {
        for part in [key, value] {
            let length = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&length.to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}

/// The entries of a page record, in the order they were recorded.
pub(super) fn decode(record: &[u8]) -> Result<Vec<Entry<'_>>, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        tree: "outbox_pages",
        reason: reason.to_owned(),
    };
    let Some((&version, mut rest)) = record.split_first() else {
        return Err(corrupt("an empty page record"));
    };
    if version != VERSION {
        return Err(corrupt(&format!(
            "a page record of layout {version}, written by a newer release (this one reads {VERSION}); run the newer release again"
        )));
    }
    let part = |rest: &mut &[u8]| -> Result<usize, StoreError> {
        let (length, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("a page record cut off inside a length"))?;
        let length = usize::try_from(u32::from_be_bytes(*length))
            .map_err(|_| corrupt("a length beyond this machine's memory"))?;
        if tail.len() < length {
            return Err(corrupt("a page record cut off inside an entry"));
        }
        *rest = tail;
        Ok(length)
    };
    let mut entries = Vec::new();
    while !rest.is_empty() {
        let length = part(&mut rest)?;
        let (key, tail) = rest.split_at(length);
        rest = tail;
        let length = part(&mut rest)?;
        let (value, tail) = rest.split_at(length);
        rest = tail;
        entries.push((key, value));
    }
    Ok(entries)
}

/// Which entries of a page were delivered: one bit per entry, by position, as
/// `outbox_delivered` holds it (no record: none yet).
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Delivered(Vec<u8>);

impl Delivered {
    pub(super) fn from_record(record: &[u8]) -> Self {
        Self(record.to_vec())
    }

    pub(super) fn as_record(&self) -> &[u8] {
        &self.0
    }

    pub(super) fn contains(&self, position: usize) -> bool {
        self.0
            .get(position / 8)
            .is_some_and(|byte| byte & (1 << (position % 8)) != 0)
    }

    /// How many entries are marked.
    pub(super) fn count(&self) -> usize {
        self.0.iter().map(|byte| byte.count_ones() as usize).sum()
    }

    pub(super) fn insert(&mut self, position: usize) {
        if self.0.len() <= position / 8 {
            self.0.resize(position / 8 + 1, 0);
        }
        self.0[position / 8] |= 1 << (position % 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_reads_back_what_was_written_and_a_damaged_one_is_named() {
        let entries: Vec<Entry<'_>> = vec![(b"k1", b"{\"a\":1}"), (b"", b""), (b"key3", b"v")];
        let record = encode(entries.iter().copied());
        assert_eq!(decode(&record).unwrap(), entries);
        assert_eq!(decode(&encode([])).unwrap(), Vec::<Entry<'_>>::new());
        for cut in 1..record.len() {
            let Err(e) = decode(&record[..cut]) else {
                // Cut exactly between two entries: a shorter page, still well formed.
                assert!(decode(&record[..cut]).unwrap().len() < entries.len());
                continue;
            };
            assert!(e.to_string().contains("outbox_pages"), "{e}");
        }
        let newer = [&[VERSION + 1][..], &record[1..]].concat();
        let e = decode(&newer).unwrap_err().to_string();
        assert!(e.contains("newer release"), "{e}");
        assert!(decode(&[]).is_err());
        let mut delivered = Delivered::default();
        for position in [0, 7, 70_000] {
            delivered.insert(position);
        }
        let read = Delivered::from_record(delivered.as_record());
        assert!([0, 7, 70_000].iter().all(|p| read.contains(*p)));
        assert!(![1, 8, 69_999, 70_001, 1 << 40]
            .iter()
            .any(|p| read.contains(*p)));
        assert_eq!(read.count(), 3);
    }
}
