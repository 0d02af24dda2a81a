//! The outbox: what each destination still has to be told, holding each loss itself so that a
//! restart can render and send it without asking Weiban again. A loss leaves only when its
//! destination accepted the message that reported it (or when a person drops it).
//!
//! It is kept in two forms, read as one:
//! - page records (`outbox_pages`, [`super::pages`]): what one recording queued for one
//!   destination, at most 100 losses a record, written by every poll;
//! - single entries (`outbox`), keyed `<destination id>\0<loss key>`: losses queued one by one
//!   (a reroute, a released hold) and everything earlier releases wrote.
//!
//! Completing a message removes its losses from whichever form holds them: a page's delivered
//! losses are marked in `outbox_delivered`, and the page leaves with its mark when nothing of
//! it is left. Plain writes, ordered so that a crash part way repeats losses and never drops
//! one ([`Store::take_delivered`] says why not a transaction).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{pages, Pending, Store, StoreError};
use crate::destination::DestinationId;
use crate::loss::LossKey;

/// Where a loss handed out by [`Store::pending_batch`] sits in its page.
pub(super) struct Hint {
    page: sled::IVec,
    position: usize,
    /// How many entries the page holds.
    entries: usize,
}

/// The last batch handed out per destination: loss key → where it sits. Only a hint for
/// [`Store::complete`], which checks it against the store; never the truth.
pub(super) type Hints = std::sync::Mutex<HashMap<DestinationId, HashMap<Vec<u8>, Hint>>>;

/// An entry of a page, with its position in the page.
type Positioned<'a> = (usize, pages::Entry<'a>);

/// Where some of a destination's losses sit, and what taking them out writes.
#[derive(Default)]
struct Removal {
    /// Single entries to remove.
    singles: Vec<Vec<u8>>,
    /// Pages that hold any: the page's key, and its new delivered mark (`None`: nothing is
    /// left, the page and its mark go).
    pages: Vec<(sled::IVec, Option<Vec<u8>>)>,
    /// Losses asked for that the outbox does not hold.
    missing: usize,
}

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
        let mut add = |key: &[u8], count: usize| {
            let end = key.iter().position(|b| *b == 0).unwrap_or(key.len());
            match raw.get_mut(&key[..end]) {
                Some(total) => *total += count,
                None => {
                    raw.insert(key[..end].to_vec(), count);
                }
            }
        };
        for key in self.outbox.iter().keys() {
            add(&key?, 1);
        }
        for page in self.outbox_pages.iter() {
            let (key, record) = page?;
            match self.undelivered(&key, &record) {
                Ok((left, _)) => add(&key, left.len()),
                // Counted, so that its destination is attempted and fails visibly (`state
                // pending`, `/healthz`) instead of dropping out of sight; the others go on.
                Err(e) => {
                    tracing::error!(
                        "{e}; its destination stops until it is repaired (report this as a bug)"
                    );
                    add(&key, 1);
                }
            }
        }
        let mut counts = BTreeMap::new();
        for (raw_id, count) in raw {
            // One unreadable key must not stop every delivery: it is reported and left alone.
            match parse_id("outbox", &raw_id) {
                Ok(id) => {
                    *counts.entry(id).or_insert(0) += count;
                }
                Err(e) => tracing::error!(
                    "{e}; {count} outbox entries under it are left alone (report this as a bug)"
                ),
            }
        }
        counts.retain(|_, count| *count > 0);
        Ok(counts)
    }

    /// Everything waiting for `destination`, oldest loss first.
    pub fn pending(&self, destination: &DestinationId) -> Result<Vec<Pending>, StoreError> {
        // A listing, not a delivery: where its losses sit is not remembered.
        self.read_pending(destination, usize::MAX, false)
    }

    /// `limit` losses waiting for `destination`, the earliest recorded first, in the order
    /// of their outflow time.
    pub fn pending_batch(
        &self,
        destination: &DestinationId,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError> {
        self.read_pending(destination, limit, true)
    }

    /// [`Store::pending_batch`]; with `remember`, where each loss sits is kept for the
    /// completions of this batch.
    fn read_pending(
        &self,
        destination: &DestinationId,
        limit: usize,
        remember: bool,
    ) -> Result<Vec<Pending>, StoreError> {
        let prefix = outbox_prefix(destination);
        let decode = |value: &[u8]| {
            serde_json::from_slice::<Pending>(value).map_err(|e| StoreError::Corrupt {
                tree: "outbox",
                reason: e.to_string(),
            })
        };
        let mut found: Vec<(Vec<u8>, Pending)> = Vec::new();
        for entry in self.outbox.scan_prefix(&prefix).take(limit) {
            let (key, value) = entry?;
            found.push((key[prefix.len()..].to_vec(), decode(&value)?));
        }
        let singles = found.len();
        let mut hints = Vec::new();
        for page in self.outbox_pages.scan_prefix(&prefix) {
            if found.len() - singles >= limit {
                break;
            }
            let (key, record) = page?;
            let (entries, total) = self.undelivered(&key, &record)?;
            for (position, (loss, value)) in entries {
                found.push((loss.to_vec(), decode(value)?));
                let hint = Hint {
                    page: key.clone(),
                    position,
                    entries: total,
                };
                hints.push((loss.to_vec(), hint));
            }
        }
        // What is handed out now is what the next completions ask for: remembered where it
        // is, for this destination's last batch only.
        if remember {
            let mut known = self.hints.lock().unwrap_or_else(|e| e.into_inner());
            known.insert(destination.clone(), hints.into_iter().collect());
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        // A loss queued twice for one destination (a single entry beside a page's copy) is
        // sent once; completing it takes both copies.
        found.dedup_by(|a, b| a.0 == b.0);
        found.truncate(limit);
        Ok(found.into_iter().map(|(_, pending)| pending).collect())
    }

    /// How many losses wait for `destination`.
    pub fn pending_count(&self, destination: &DestinationId) -> usize {
        let prefix = outbox_prefix(destination);
        self.outbox.scan_prefix(&prefix).count() + self.paged_count(&prefix)
    }

    /// How many losses the pages under `prefix` hold.
    fn paged_count(&self, prefix: &[u8]) -> usize {
        self.outbox_pages
            .scan_prefix(prefix)
            .filter_map(Result::ok)
            // An unreadable page still holds something: never counted as empty.
            .map(|(key, record)| self.undelivered(&key, &record).map_or(1, |e| e.0.len()))
            .sum()
    }

    /// The keys of every loss waiting for `destination`, from one read of its outbox (no loss
    /// decoded): what a reroute asks of each sibling ([`crate::deliver::reroute::plan`]).
    pub fn pending_keys(
        &self,
        destination: &DestinationId,
    ) -> Result<HashSet<Vec<u8>>, StoreError> {
        // Not through `locate`, whose hints are for the completions of the last batch.
        let prefix = outbox_prefix(destination);
        let mut keys = HashSet::new();
        for entry in self.outbox.scan_prefix(&prefix) {
            let (key, _) = entry?;
            keys.insert(key[prefix.len()..].to_vec());
        }
        for page in self.outbox_pages.scan_prefix(&prefix) {
            let (key, record) = page?;
            let (left, _) = self.undelivered(&key, &record)?;
            keys.extend(left.into_iter().map(|(_, (loss, _))| loss.to_vec()));
        }
        Ok(keys)
    }

    /// Whether `loss` waits for `destination`.
    #[cfg(test)]
    pub fn is_pending(
        &self,
        destination: &DestinationId,
        loss: &LossKey,
    ) -> Result<bool, StoreError> {
        Ok(self.pending_keys(destination)?.contains(loss.as_bytes()))
    }

    /// Marks `losses` delivered to `destination`. Durable by the next send's barrier or the
    /// attempt's [`Store::settle`], whichever comes first ([`super::flushes`]): until then a
    /// crash sends the message again.
    ///
    /// Fails when a loss to remove is not there: something that believes it delivered a
    /// loss which the outbox does not hold would otherwise be sent again every cycle.
    pub async fn complete(
        &self,
        destination: &DestinationId,
        losses: &[LossKey],
    ) -> Result<(), StoreError> {
        let removal = self.locate(destination, losses)?;
        let missing = removal.missing;
        let taken = self.take_delivered(removal);
        // Counted even when the writes stopped part way: those that happened wait for a flush.
        self.flushes.completed();
        taken?;
        if missing > 0 {
            return Err(StoreError::NotCompleted {
                destination: destination.to_string(),
                asked: losses.len(),
                missing,
            });
        }
        Ok(())
    }

    /// Moves pending losses of `from` elsewhere: each listed loss is queued for its targets
    /// (none, when it is already delivered elsewhere), then leaves `from`. Losses not listed
    /// stay with `from`. Returns how many losses left `from`. Plain writes in that order, as
    /// completions are ([`Store::take_delivered`]): a crash between them leaves a loss in both
    /// places, sent twice, never in neither.
    pub async fn reroute(
        &self,
        from: &DestinationId,
        moves: &[(Pending, Vec<DestinationId>)],
    ) -> Result<usize, StoreError> {
        let mut queued = Vec::new();
        for (pending, targets) in moves {
            let value = serde_json::to_vec(pending).map_err(|e| StoreError::Corrupt {
                tree: "outbox",
                reason: e.to_string(),
            })?;
            let key = pending.loss.key();
            for target in targets {
                queued.push((outbox_key(target, &key), value.clone()));
            }
        }
        let keys: Vec<LossKey> = moves.iter().map(|(p, _)| p.loss.key()).collect();
        let removal = self.locate(from, &keys)?;
        for (key, value) in queued {
            self.outbox.insert(key, value)?;
        }
        self.take_delivered(removal)?;
        if self.pending_count(from) == 0 {
            self.destinations.remove(from.to_string())?;
        }
        self.durable().await?;
        Ok(moves.len())
    }

    /// Discards everything pending for `destination`. Returns how many losses were dropped.
    pub async fn drop_pending(&self, destination: &DestinationId) -> Result<usize, StoreError> {
        let prefix = outbox_prefix(destination);
        let mut dropped = self.paged_count(&prefix);
        remove_prefix(&self.outbox_pages, &prefix)?;
        remove_prefix(&self.outbox_delivered, &prefix)?;
        dropped += remove_prefix(&self.outbox, &prefix)?;
        dropped += self.drop_prepared(destination)?;
        self.destinations.remove(destination.to_string())?;
        self.durable().await?;
        Ok(dropped)
    }

    /// Finds `losses` of `destination`: in single entries, then in its pages, earliest first
    /// (where a delivery's losses come from), reading no further than the last one found.
    fn locate(
        &self,
        destination: &DestinationId,
        losses: &[LossKey],
    ) -> Result<Removal, StoreError> {
        let prefix = outbox_prefix(destination);
        let mut wanted: HashSet<&[u8]> = losses.iter().map(LossKey::as_bytes).collect();
        let mut removal = Removal::default();
        // Found as single entries: looked for in the pages too (a copy may sit in both), but
        // not missing when they are not there.
        let mut single: HashSet<&[u8]> = HashSet::new();
        if self.outbox.scan_prefix(&prefix).next().is_some() {
            for loss in losses {
                let key = outbox_key(destination, loss);
                if self.outbox.contains_key(&key)? {
                    single.insert(loss.as_bytes());
                    removal.singles.push(key);
                }
            }
        }
        // Each page touched: what of it is delivered with these losses, and how many it holds.
        let mut marks: BTreeMap<sled::IVec, (pages::Delivered, usize)> = BTreeMap::new();
        // Where the last batch said they are: a page is never rewritten and its key never
        // reused, so a hint whose page still exists is right.
        let hinted: Vec<(&LossKey, Hint)> = {
            let mut known = self.hints.lock().unwrap_or_else(|e| e.into_inner());
            match known.get_mut(destination) {
                Some(batch) => losses
                    .iter()
                    .filter(|loss| wanted.contains(loss.as_bytes()))
                    .filter_map(|loss| Some((loss, batch.remove(loss.as_bytes())?)))
                    .collect(),
                None => Vec::new(),
            }
        };
        for (loss, hint) in &hinted {
            let (delivered, _) = match marks.get_mut(&hint.page) {
                Some(touched) => touched,
                None => {
                    if !self.outbox_pages.contains_key(&hint.page)? {
                        continue;
                    }
                    let delivered = self.delivered(&hint.page)?;
                    // Already delivered: not touched by this message (the scan below says
                    // whether it is missing).
                    if delivered.contains(hint.position) {
                        continue;
                    }
                    marks
                        .entry(hint.page.clone())
                        .or_insert((delivered, hint.entries))
                }
            };
            if !delivered.contains(hint.position) {
                delivered.insert(hint.position);
                wanted.remove::<[u8]>(loss.as_bytes());
            }
        }
        // The rest (no hint: a restart, a listing in between), page by page, earliest first.
        let mut taken: HashSet<Vec<u8>> = HashSet::new();
        for page in self.outbox_pages.scan_prefix(&prefix) {
            if wanted.is_empty() {
                break;
            }
            let (key, record) = page?;
            let entries = pages::decode(&record)?;
            let total = entries.len();
            let mut mark = match marks.get(&key) {
                Some((delivered, _)) => delivered.clone(),
                None => self.delivered(&key)?,
            };
            let mut found = false;
            for (position, (loss, _)) in entries.into_iter().enumerate() {
                if mark.contains(position) {
                    continue;
                }
                // Every copy of a wanted loss (a destination listed twice queues two).
                if wanted.remove::<[u8]>(loss) || taken.contains(loss) {
                    taken.insert(loss.to_vec());
                    mark.insert(position);
                    found = true;
                }
            }
            if found {
                marks.insert(key, (mark, total));
            }
        }
        for (key, (delivered, total)) in marks {
            let left = delivered.count() < total;
            let mark = left.then(|| delivered.as_record().to_vec());
            removal.pages.push((key, mark));
        }
        removal.missing = wanted.iter().filter(|loss| !single.contains(*loss)).count();
        Ok(removal)
    }

    /// Which entries of page `key` were delivered.
    fn delivered(&self, key: &[u8]) -> Result<pages::Delivered, StoreError> {
        Ok(self
            .outbox_delivered
            .get(key)?
            .map_or_else(pages::Delivered::default, |mark| {
                pages::Delivered::from_record(&mark)
            }))
    }

    /// The entries of page `key` (its `record`) not delivered yet, with their positions, and
    /// how many entries the page holds.
    fn undelivered<'a>(
        &self,
        key: &[u8],
        record: &'a [u8],
    ) -> Result<(Vec<Positioned<'a>>, usize), StoreError> {
        let delivered = self.delivered(key)?;
        let entries = pages::decode(record)?;
        let total = entries.len();
        let left = entries
            .into_iter()
            .enumerate()
            .filter(|(position, _)| !delivered.contains(*position))
            .collect();
        Ok((left, total))
    }

    /// Takes what a message delivered out of the outbox, with plain writes in an order that a
    /// crash can only turn into repeats, never into losses: a sled transaction (or batch) costs
    /// two writes of the log buffer, each waking sled's I/O threads, and this runs once per
    /// message. sled recovers a prefix of its writes, so a crash part way leaves some of the
    /// message's losses marked and the rest still pending (sent again: a duplicate). A page
    /// leaves before its mark does; a crash in between leaves a mark whose page is gone, which
    /// nothing reads (`state drop` clears it with the destination's other records).
    fn take_delivered(&self, removal: Removal) -> Result<(), StoreError> {
        for key in &removal.singles {
            self.outbox.remove(key.as_slice())?;
        }
        for (key, mark) in &removal.pages {
            match mark {
                Some(mark) => {
                    self.outbox_delivered.insert(key, mark.as_slice())?;
                }
                None => {
                    self.outbox_pages.remove(key)?;
                    self.outbox_delivered.remove(key)?;
                }
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::DestinationKind;
    use crate::loss::Loss;

    fn robot(arg: &str) -> DestinationId {
        DestinationId::new("r", DestinationKind::Wecom, arg)
    }

    fn keys(pending: &[Pending]) -> Vec<String> {
        pending.iter().map(|p| p.loss.customer_id.clone()).collect()
    }

    /// A recording of more than `RECORD_LOSSES` losses is written as several records under
    /// one id, per destination; a batch and a completion that span records read and empty
    /// them like any others, and a record leaves with its delivered mark.
    #[tokio::test]
    async fn a_large_recording_is_cut_into_records_under_one_id() {
        let store = Store::temporary().unwrap();
        let (a, b) = (robot("a"), robot("b"));
        let losses: Vec<Loss> = (0..250)
            .map(|i| Loss::sample(&format!("c{i:03}"), "s1", 1_000 + i64::from(i)))
            .collect();
        let batch: Vec<_> = losses
            .iter()
            .map(|l| (l.clone(), vec![a.clone(), b.clone()]))
            .collect();
        assert_eq!(store.record(&batch, |_| 1).await.unwrap(), 250);
        assert_eq!(store.outbox_pages.len(), 6, "3 records per destination");
        let ids: HashSet<Vec<u8>> = store
            .outbox_pages
            .iter()
            .map(|entry| {
                let (key, _) = entry.unwrap();
                let at = key.iter().position(|b| *b == 0).unwrap() + 1;
                key[at..at + 8].to_vec()
            })
            .collect();
        assert_eq!(ids.len(), 1, "one recording, one id");
        assert_eq!(store.pending_count(&a), 250);

        // A batch of 150 reads two records (200 losses) and keeps the oldest 150.
        let first = store.pending_batch(&a, 150).unwrap();
        assert_eq!(keys(&first).first().map(String::as_str), Some("c000"));
        assert_eq!(keys(&first).last().map(String::as_str), Some("c149"));
        let delivered: Vec<_> = first.iter().map(|p| p.loss.key()).collect();
        store.complete(&a, &delivered).await.unwrap();
        assert_eq!(store.pending_count(&a), 100);
        assert_eq!(store.pending_count(&b), 250, "b untouched");
        assert_eq!(store.outbox_pages.len(), 5, "a's first record is gone");
        assert_eq!(
            store.outbox_delivered.len(),
            1,
            "the record half delivered is marked"
        );

        let rest: Vec<_> = store
            .pending(&a)
            .unwrap()
            .iter()
            .map(|p| p.loss.key())
            .collect();
        store.complete(&a, &rest).await.unwrap();
        assert_eq!(store.pending_count(&a), 0);
        assert_eq!(store.outbox_pages.len(), 3, "only b's records are left");
        assert!(
            store.outbox_delivered.is_empty(),
            "no mark outlives its record"
        );
    }

    /// Pages (what polls record) and single entries (what a reroute queues) read as one
    /// outbox: counted, listed in outflow order, completed across page boundaries, a page
    /// marked with what of it was delivered and gone, with its mark, when nothing is left.
    #[tokio::test]
    async fn pages_and_single_entries_are_one_outbox() {
        let store = Store::temporary().unwrap();
        let (a, b) = (robot("a"), robot("b"));
        let losses: Vec<Loss> = (0..6)
            .map(|i| Loss::sample(&format!("c{i}"), "s1", 100 + i64::from(i)))
            .collect();
        // Two recordings (pages), the second out of time order; `b` gets the first only.
        let first: Vec<_> = [&losses[3], &losses[4], &losses[5]]
            .into_iter()
            .map(|l| (l.clone(), vec![a.clone(), b.clone()]))
            .collect();
        let second: Vec<_> = [&losses[0], &losses[2]]
            .into_iter()
            .map(|l| (l.clone(), vec![a.clone()]))
            .collect();
        assert_eq!(store.record(&first, |_| 1).await.unwrap(), 3);
        assert_eq!(store.record(&second, |_| 2).await.unwrap(), 2);
        assert_eq!(
            store.outbox_pages.len(),
            3,
            "one page per recording and destination"
        );
        assert!(store.outbox.is_empty());
        // A loss queued on its own for `a` (a reroute from a robot that left).
        let moved = Pending::one_poll([losses[1].clone()]).remove(0);
        store
            .reroute(&robot("gone"), &[(moved, vec![a.clone()])])
            .await
            .unwrap();
        assert_eq!(store.outbox.len(), 1);

        assert_eq!(store.pending_count(&a), 6);
        assert_eq!(store.pending_count(&b), 3);
        let counts = store.pending_counts().unwrap();
        assert_eq!((counts.get(&a), counts.get(&b)), (Some(&6), Some(&3)));
        assert_eq!(
            keys(&store.pending(&a).unwrap()),
            ["c0", "c1", "c2", "c3", "c4", "c5"]
        );
        // A batch reads whole pages in the order they were recorded, then keeps `limit`.
        assert_eq!(keys(&store.pending_batch(&a, 2).unwrap()), ["c1", "c3"]);
        assert!(store.is_pending(&a, &losses[1].key()).unwrap());
        assert!(store.is_pending(&b, &losses[5].key()).unwrap());
        assert!(!store.is_pending(&b, &losses[0].key()).unwrap());

        // One message's losses: the single entry, one of the first page and one of the second.
        let delivered = [losses[1].key(), losses[4].key(), losses[0].key()];
        store.complete(&a, &delivered).await.unwrap();
        assert_eq!(keys(&store.pending(&a).unwrap()), ["c2", "c3", "c5"]);
        // One read gives the same keys as the listing: the single entry and the pages' rest.
        let pending_keys = store.pending_keys(&a).unwrap();
        let listed: HashSet<Vec<u8>> = store
            .pending(&a)
            .unwrap()
            .iter()
            .map(|p| p.loss.key().as_bytes().to_vec())
            .collect();
        assert_eq!(pending_keys, listed);
        assert_eq!(
            keys(&store.pending(&b).unwrap()),
            ["c3", "c4", "c5"],
            "b untouched"
        );
        assert!(store.outbox.is_empty());
        store.complete(&a, &[losses[2].key()]).await.unwrap();
        assert_eq!(
            store.outbox_pages.len(),
            2,
            "a page that keeps nothing is gone"
        );

        let again = store
            .complete(&a, &[losses[2].key(), losses[3].key()])
            .await;
        assert!(
            matches!(
                again,
                Err(StoreError::NotCompleted {
                    missing: 1,
                    asked: 2,
                    ..
                })
            ),
            "{again:?}"
        );
        assert_eq!(
            keys(&store.pending(&a).unwrap()),
            ["c5"],
            "the one found left"
        );

        assert_eq!(store.drop_pending(&b).await.unwrap(), 3);
        assert_eq!(store.pending_count(&b), 0);
        store.complete(&a, &[losses[5].key()]).await.unwrap();
        assert!(store.pending_counts().unwrap().is_empty());
        assert!(store.outbox_pages.is_empty() && store.outbox.is_empty());
        assert!(store.outbox_delivered.is_empty());
    }

    /// A batch remembers where its losses sit; completing them message by message finds them
    /// there, and a hint whose page is gone falls back to reading the pages.
    #[tokio::test]
    async fn completions_use_where_the_batch_found_each_loss() {
        let store = Store::temporary().unwrap();
        let a = robot("a");
        let losses: Vec<Loss> = (0..9)
            .map(|i| Loss::sample(&format!("c{i}"), "s1", 100 + i64::from(i)))
            .collect();
        for page in losses.chunks(3) {
            let batch: Vec<_> = page.iter().map(|l| (l.clone(), vec![a.clone()])).collect();
            store.record(&batch, |_| 1).await.unwrap();
        }
        assert_eq!(store.pending_batch(&a, 100).unwrap().len(), 9);
        // Messages across pages, as grouping by staff member makes them.
        for message in [[0, 3, 6], [1, 4, 7], [2, 5, 8]] {
            let keys: Vec<_> = message.iter().map(|i| losses[*i].key()).collect();
            store.complete(&a, &keys).await.unwrap();
            assert!(keys.iter().all(|k| !store.is_pending(&a, k).unwrap()));
        }
        assert!(store.outbox_pages.is_empty() && store.outbox_delivered.is_empty());

        // Hints of a page that was dropped since: the loss is not there, loudly.
        let batch = vec![(Loss::sample("late", "s1", 500), vec![a.clone()])];
        store.record(&batch, |_| 2).await.unwrap();
        assert_eq!(store.pending_batch(&a, 100).unwrap().len(), 1);
        store.drop_pending(&a).await.unwrap();
        let gone = store.complete(&a, &[batch[0].0.key()]).await;
        assert!(
            matches!(gone, Err(StoreError::NotCompleted { missing: 1, .. })),
            "{gone:?}"
        );
    }

    /// Ids are unique only in the database that made them: a page brought in by an import
    /// under the id this store makes next is not overwritten, nor its delivered mark taken.
    #[tokio::test]
    async fn a_page_id_made_again_overwrites_nothing() {
        let store = Store::temporary().unwrap();
        let a = robot("a");
        let imported = Loss::sample("imported", "s1", 50);
        let next = store.db.generate_id().unwrap() + 1;
        let value = serde_json::to_vec(&Pending::one_poll([imported.clone()])[0]).unwrap();
        let page = pages::encode([(imported.key().as_bytes(), value.as_slice())]);
        let key = pages::page_key(outbox_prefix(&a), next, imported.key().as_bytes());
        store.outbox_pages.insert(&key, page).unwrap();
        let mut mark = pages::Delivered::default();
        mark.insert(1);
        store
            .outbox_delivered
            .insert(&key, mark.as_record())
            .unwrap();

        let fresh = Loss::sample("fresh", "s1", 60);
        store
            .record(&[(fresh.clone(), vec![a.clone()])], |_| 1)
            .await
            .unwrap();
        assert_eq!(store.outbox_pages.len(), 2, "the page was not overwritten");
        assert_eq!(keys(&store.pending(&a).unwrap()), ["imported", "fresh"]);
        store.complete(&a, &[fresh.key()]).await.unwrap();
        assert_eq!(keys(&store.pending(&a).unwrap()), ["imported"]);
    }

    /// A loss queued twice for one destination (a page's copy and a single entry beside it)
    /// is handed out once and completed whole; an unreadable page keeps its destination in
    /// sight and fails it loudly instead of counting as empty.
    #[tokio::test]
    async fn a_loss_held_twice_is_sent_once_and_an_unreadable_page_is_not_empty() {
        let store = Store::temporary().unwrap();
        let a = robot("a");
        let loss = Loss::sample("c", "s1", 100);
        store
            .record(&[(loss.clone(), vec![a.clone()])], |_| 1)
            .await
            .unwrap();
        let moved = Pending::one_poll([loss.clone()]).remove(0);
        store
            .reroute(&robot("gone"), &[(moved, vec![a.clone()])])
            .await
            .unwrap();
        assert_eq!(keys(&store.pending_batch(&a, 10).unwrap()), ["c"]);
        store.complete(&a, &[loss.key()]).await.unwrap();
        assert_eq!(store.pending_count(&a), 0, "both copies left");

        let b = robot("b");
        store
            .outbox_pages
            .insert(
                pages::page_key(outbox_prefix(&b), 1, b"x"),
                &[9u8, 0, 0][..],
            )
            .unwrap();
        assert_eq!(store.pending_count(&b), 1);
        assert_eq!(store.pending_counts().unwrap().get(&b), Some(&1));
        let err = store.pending_batch(&b, 10).unwrap_err().to_string();
        assert!(err.contains("outbox_pages"), "{err}");
    }
}
