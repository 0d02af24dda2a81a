//! Store stage: what has been seen, what still has to be delivered, and where polling stands.
//!
//! One sled database with ten trees per corp:
//! - `seen_minutely`: every remembered loss, 20 bytes each in one record per minute of outflow
//!   time ([`seen`] explains the encoding); pruning by age drops whole minutes. Stores from
//!   before it keep their hour records in `seen_hourly`, read and pruned, never written.
//! - `outbox_pages` and `outbox`: what each destination still has to be told, holding each
//!   loss itself so that a restart can render and send it without asking Weiban again; a poll
//!   writes, per transaction (a group of pages, about 300 losses) and destination, records of
//!   at most 100 losses under one id ([`pages`]; what of a record was delivered is marked in
//!   `outbox_delivered`), a loss queued on its own one entry per destination and loss
//!   ([`outbox`]).
//! - `destinations`: why a destination is waiting ([`DestinationState`]), when it has failed.
//! - `meta`: the end of the last window fetched whole.
//! - `held`: losses that routing could not place yet, per route, with why ([`crate::hold`]).
//! - `ledger`: which report went to which destination for which period ([`ledger`]), and the
//!   staff deletions counted per day for the anomaly alert.
//!
//! Each corp has its own trees ([`namespace`]): the corp of a single-corp config (named
//! `default`) the trees named above, as the single-corp release wrote them, any other corp
//! the same names under `corp/NAME/`. One sled database serves them all, so a corp costs a
//! few trees, not a database of its own.
//!
//! A group of pages' losses enters `seen` and the outbox in one transaction (the poll groups
//! about 300, `RECORD_GROUP` in `src/pipeline/mod.rs`); the pages of a window are made durable
//! together, by one flush before the first message that could report them is sent
//! ([`Store::durable_before_send`]), not one flush per page. A crash before that flush
//! leaves a prefix of the groups (sled recovers a prefix of its log, each transaction whole)
//! and the window's end where it was, so the window is polled again and nothing is lost. A
//! loss leaves the outbox only after its destination accepted the message; those completions
//! are flushed in groups ([`flushes`]: a flush begins within 10 ms, and when a destination's
//! attempt ends). A crash therefore repeats the message in flight and those accepted in the
//! 10 ms before it, and never loses one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

mod destinations;
mod flushes;
pub use flushes::COMPLETION_GAP;
mod held;
pub use held::HeldLoss;
pub(crate) use held::Release;
pub(crate) use prepared::producer_of;
pub use prepared::{Bytes, Prepared, PreparedBody, PreparedFile, Produced};
pub(crate) mod ledger;
mod meta;
mod migrate;
pub(crate) mod namespace;
mod outbox;
mod pages;
mod prepared;
mod reopen;
pub(crate) mod seen;

use crate::destination::DestinationId;
use crate::loss::{Loss, LossKey};

const WINDOW_END: &[u8] = b"window_end";
/// The last good copy of the org chart.
const DIRECTORY: &[u8] = b"directory";

/// A store failure. The path is named; the cause says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {path} is in use by another churn-alert process; stop it first (only one process may use a store)"
    )]
    Locked { path: String },
    #[error("cannot open the store at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("store operation failed: {0}")]
    Sled(#[from] sled::Error),
    #[error(
        "the store was written by a newer churn-alert (store format {found}; this release reads up to format {known}): run the newer release, or restore the backup taken before the upgrade (README, \"Upgrade and rollback\")"
    )]
    NewerFormat { found: u8, known: u8 },
    #[error("store holds an unreadable record in `{tree}`: {reason}")]
    Corrupt { tree: &'static str, reason: String },
    #[error(
        "the store could not mark {missing} of {asked} delivered loss(es) of {destination} as delivered (no such outbox entry); to avoid sending them again and again, this destination is stopped: see `churn-alert state pending`, then `churn-alert state drop --destination {destination}` once they are confirmed delivered"
    )]
    NotCompleted {
        destination: String,
        asked: usize,
        missing: usize,
    },
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

/// A loss as a poll records it: its destinations, and the routes that hold it and why.
pub type Recorded = (
    Loss,
    Vec<DestinationId>,
    Vec<(String, crate::hold::HoldReason)>,
);

/// A loss waiting for one destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    #[serde(rename = "l")]
    pub loss: Loss,
    /// Unix seconds when it entered the outbox: losses of one poll share it.
    #[serde(rename = "q")]
    pub enqueued_at: i64,
    /// The robots (destination ids) this loss was queued for when it was recorded: only these
    /// can have delivered it when one of them leaves the config ([`crate::deliver::reroute`]).
    #[serde(rename = "w", default, skip_serializing_if = "Vec::is_empty")]
    pub robots: Vec<String>,
}

/// [`Pending`] as [`Store::record_routed`] writes it: the same fields under the same names,
/// borrowed from the poll's losses rather than copied, since they are only serialized.
#[derive(Serialize)]
struct PendingRecord<'a> {
    #[serde(rename = "l")]
    loss: &'a Loss,
    #[serde(rename = "q")]
    enqueued_at: i64,
    #[serde(rename = "w", skip_serializing_if = "Vec::is_empty")]
    robots: Vec<&'a DestinationId>,
}

impl<'a> PendingRecord<'a> {
    fn new(loss: &'a Loss, enqueued_at: i64, destinations: &'a [DestinationId]) -> Self {
        let robots = destinations
            .iter()
            .filter(|d| d.kind == crate::destination::DestinationKind::Wecom)
            .collect();
        Self {
            loss,
            enqueued_at,
            robots,
        }
    }
}

impl Pending {
    /// Losses that would be queued by one poll now (previews, dry runs, checks).
    pub fn one_poll(losses: impl IntoIterator<Item = Loss>) -> Vec<Pending> {
        losses
            .into_iter()
            .map(|loss| Pending {
                loss,
                enqueued_at: 0,
                robots: Vec::new(),
            })
            .collect()
    }
}

/// Why a destination has pending deliveries that were not sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationState {
    pub status: DeliveryStatus,
    /// The last error, with its errcode and meaning (never a key).
    pub reason: String,
    /// Unix seconds of the first failure in this streak.
    pub since: i64,
    /// Unix seconds before which no attempt is made; `None` for failures that wait for a person.
    pub retry_at: Option<i64>,
    pub attempts: u32,
    /// A fingerprint of the address that failed (robot URL, mailbox): when the config now
    /// holds another one, the failure is not waited out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// A transient fault: retried automatically at `retry_at`.
    Retrying,
    /// A permanent fault (robot removed, bad key): waits for `state retry`.
    Failed,
    /// Losses were skipped, not delivered (a staff member without an email address); the
    /// destination itself is fine. Shown by `state pending` until it delivers again.
    Skipped,
}

/// Numbers for `state stats`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoreStats {
    pub remembered_losses: usize,
    /// Losses held for want of routing data, per route.
    #[serde(default)]
    pub held: BTreeMap<String, usize>,
    pub pending: BTreeMap<DestinationId, usize>,
    pub last_window_end: Option<i64>,
    pub size_on_disk: u64,
}

/// The embedded database. Cheap to clone; all clones share one sled instance.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// What waits for a flush ([`flushes`]); shared by every handle (and corp) of one
    /// database.
    flushes: Arc<flushes::Flushes>,
    /// Where the losses of each destination's last batch sit ([`outbox`]), so that completing
    /// a message does not read every page its losses might be in.
    hints: Arc<outbox::Hints>,
    /// The folder, for the size on disk; `None` for a temporary store.
    path: Option<std::path::PathBuf>,
    seen: sled::Tree,
    /// Hour buckets of stores written before minute buckets: read, pruned, never written.
    seen_hourly: sled::Tree,
    outbox: sled::Tree,
    outbox_pages: sled::Tree,
    outbox_delivered: sled::Tree,
    destinations: sled::Tree,
    meta: sled::Tree,
    ledger: sled::Tree,
    held: sled::Tree,
    prepared: sled::Tree,
    /// Marks the store closed when its last handle goes ([`reopen`]); last, so that it goes
    /// after every sled handle of this struct.
    open: Arc<reopen::OpenStore>,
}

impl Store {
    /// Opens (or creates) the store at `path`; fails at once if another process holds it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(sled::Config::new().path(path), path, Some(path))
    }

    /// Whether a store was ever created at `path` (sled's own files are there).
    pub fn exists(path: &Path) -> bool {
        path.join("conf").is_file() && path.join("db").is_file()
    }

    /// An empty store that lives in memory and leaves nothing behind (dry runs against a
    /// store that does not exist yet).
    pub fn temporary() -> Result<Self, StoreError> {
        Self::open_with(
            sled::Config::new().temporary(true),
            Path::new("(temporary)"),
            None,
        )
    }

    /// Opens `config`'s database, shown as `shown` in errors; `path` is where it lives on disk
    /// (`None`: a temporary store, which has no files and no lock).
    fn open_with(
        config: sled::Config,
        shown: &Path,
        path: Option<&Path>,
    ) -> Result<Self, StoreError> {
        let shown = shown.display().to_string();
        let db = config
            // sled's page cache (BENCHMARKS.md, sixth pass: 2 MB held more at the peak and
            // gained no speed).
            .cache_capacity(1024 * 1024)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(|source| match &source {
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("could not acquire lock") =>
                {
                    StoreError::Locked {
                        path: shown.clone(),
                    }
                }
                _ => StoreError::Open {
                    path: shown.clone(),
                    source,
                },
            })?;
        Self::with_trees(
            db,
            Arc::default(),
            Arc::new(reopen::OpenStore::new(path)),
            path.map(Path::to_owned),
            "",
        )
    }

    /// The store over `db` whose trees are named with `prefix` (a corp's namespace).
    fn with_trees(
        db: sled::Db,
        flushes: Arc<flushes::Flushes>,
        open: Arc<reopen::OpenStore>,
        path: Option<std::path::PathBuf>,
        prefix: &str,
    ) -> Result<Self, StoreError> {
        let tree = |name: &str| db.open_tree(format!("{prefix}{name}"));
        Ok(Self {
            seen: tree("seen_minutely")?,
            seen_hourly: tree("seen_hourly")?,
            outbox: tree("outbox")?,
            outbox_pages: tree("outbox_pages")?,
            outbox_delivered: tree("outbox_delivered")?,
            destinations: tree("destinations")?,
            meta: tree("meta")?,
            ledger: tree("ledger")?,
            held: tree("held")?,
            prepared: tree("prepared")?,
            db,
            flushes,
            hints: Arc::default(),
            open,
            path,
        })
    }

    /// Remembers the losses not seen before and queues each for its destinations, atomically.
    /// `poll` stamps each loss with the poll it counts for (storm protection counts per poll).
    ///
    /// Returns how many were new. Durable at the next flush, which comes at the latest before
    /// the next send ([`Store::durable_before_send`]).
    pub async fn record(
        &self,
        batch: &[(Loss, Vec<DestinationId>)],
        poll: impl Fn(&Loss) -> i64,
    ) -> Result<usize, StoreError> {
        let batch: Vec<Recorded> = batch
            .iter()
            .map(|(loss, destinations)| (loss.clone(), destinations.clone(), Vec::new()))
            .collect();
        self.record_routed(&batch, 0, poll).await
    }

    /// Like [`Store::record`], with the routes that hold each loss (since `now`): a loss is
    /// remembered, queued and held in one transaction, or not at all. Not flushed here: a
    /// window's pages are flushed together before anything is sent (one fsync per window
    /// instead of one per page).
    pub async fn record_routed(
        &self,
        batch: &[Recorded],
        now: i64,
        poll: impl Fn(&Loss) -> i64,
    ) -> Result<usize, StoreError> {
        let entries: Vec<(LossKey, Vec<u8>)> = batch
            .iter()
            .map(|(loss, destinations, _)| {
                let value = serde_json::to_vec(&PendingRecord::new(loss, poll(loss), destinations))
                    .map_err(|e| StoreError::Corrupt {
                        tree: "outbox",
                        reason: e.to_string(),
                    })?;
                Ok((loss.key(), value))
            })
            .collect::<Result<_, StoreError>>()?;
        let held = held::encode_all(batch, now, &poll)?;
        // Remembered in an older store's hour buckets (read only): not new either.
        let older = if self.seen_hourly.is_empty() {
            vec![false; batch.len()]
        } else {
            let losses = batch.iter().map(|(loss, _, _)| loss);
            Self::in_buckets(&self.seen_hourly, losses, seen::legacy_bucket_key)?
        };
        // One id for this batch, under which each destination's entries are cut into records of
        // at most `RECORD_LOSSES`: ids only grow, so a destination's recordings stay in order.
        let page_id = self.db.generate_id()?;
        let trees = (&self.seen, &self.outbox_pages, &self.held);
        let new = trees.transaction(|(seen_tree, outbox_pages, held_tree)| {
            // Buckets touched by this batch, read once and written back once.
            let mut buckets: HashMap<[u8; 8], Vec<u8>> = HashMap::new();
            let mut paged: Vec<(&DestinationId, Vec<pages::Entry<'_>>)> = Vec::new();
            let mut new = 0;
            for ((((loss, destinations, _), (key, value)), holds), older) in
                batch.iter().zip(&entries).zip(&held).zip(&older)
            {
                if *older {
                    continue;
                }
                let bucket_key = seen::bucket_key(loss.outflow_at);
                let bucket = match buckets.entry(bucket_key) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => e.insert(
                        seen_tree
                            .get(bucket_key)?
                            .map(|v| v.to_vec())
                            .unwrap_or_default(),
                    ),
                };
                let entry = seen::entry(loss.outflow_at, &loss.customer_id, &loss.staff_id);
                if !seen::insert(bucket, &entry) {
                    continue;
                }
                for destination in destinations {
                    let entry = (key.as_bytes(), value.as_slice());
                    match paged.iter_mut().find(|(d, _)| *d == destination) {
                        Some((_, page)) => page.push(entry),
                        None => paged.push((destination, vec![entry])),
                    }
                }
                for (held_key, held_value) in holds {
                    held_tree.insert(held_key.as_slice(), held_value.as_slice())?;
                }
                new += 1;
            }
            for (destination, page) in paged {
                let prefix = outbox::outbox_prefix(destination);
                for record in page.chunks(pages::RECORD_LOSSES) {
                    let first = record.first().map_or(&[][..], |(loss, _)| *loss);
                    let key = pages::page_key(prefix.clone(), page_id, first);
                    outbox_pages.insert(key, pages::encode(record.iter().copied()))?;
                }
            }
            for (bucket_key, bucket) in buckets {
                seen_tree.insert(&bucket_key, bucket)?;
            }
            Ok::<_, ConflictableTransactionError<StoreError>>(new)
        })?;
        if new > 0 {
            self.flushes.recorded();
        }
        Ok(new)
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats {
            remembered_losses: self.remembered()?,
            held: self.held_counts()?,
            pending: self.pending_counts()?,
            last_window_end: self.last_window_end()?,
            size_on_disk: self.size_on_disk()?,
        })
    }

    /// Bytes the store's files take: what `du` would count, the same for every reader (sled's
    /// own figure stays 0 until its first flush).
    fn size_on_disk(&self) -> Result<u64, StoreError> {
        let Some(path) = &self.path else {
            return Ok(self.db.size_on_disk()?);
        };
        fn walk(dir: &Path) -> std::io::Result<u64> {
            let mut total = 0;
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                total += if meta.is_dir() {
                    walk(&entry.path())?
                } else {
                    meta.len()
                };
            }
            Ok(total)
        }
        walk(path).map_err(|e| StoreError::Sled(sled::Error::Io(e)))
    }

    pub async fn flush(&self) -> Result<(), StoreError> {
        self.durable().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(customer: &str, at: i64) -> Loss {
        Loss::sample(customer, "s1", at)
    }

    #[test]
    fn a_record_is_written_as_the_pending_it_reads_back_as() {
        let mut loss = loss("a", 10);
        loss.tags = vec!["VIP".into()];
        let robot = DestinationId::robot("m", "https://h/send?key=AAA");
        let mailbox = DestinationId::mailbox("m", "boss@example.com");
        let destinations = [robot.clone(), mailbox];
        let written = serde_json::to_vec(&PendingRecord::new(&loss, 7, &destinations)).unwrap();
        let owned = Pending {
            loss: loss.clone(),
            enqueued_at: 7,
            robots: vec![robot.to_string()],
        };
        assert_eq!(written, serde_json::to_vec(&owned).unwrap());
        let read: Pending = serde_json::from_slice(&written).unwrap();
        assert_eq!(
            (read.loss, read.enqueued_at, read.robots),
            (loss, 7, owned.robots)
        );
        let no_robots = serde_json::to_vec(&PendingRecord::new(&owned.loss, 7, &[])).unwrap();
        assert!(!String::from_utf8(no_robots).unwrap().contains("\"w\""));
    }

    #[tokio::test]
    async fn records_once_and_delivers_per_destination() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = |i: &str| DestinationId::new("r", crate::destination::DestinationKind::Wecom, i);
        let dests = vec![id("0"), id("1")];
        let batch = vec![
            (loss("a", 10), dests.clone()),
            (loss("b", 20), dests.clone()),
        ];
        assert_eq!(store.record(&batch, |_| 100).await.unwrap(), 2);
        assert_eq!(store.record(&batch, |_| 101).await.unwrap(), 0);
        assert_eq!(store.pending(&id("0")).unwrap().len(), 2);
        store
            .complete(&id("0"), &[loss("a", 10).key(), loss("b", 20).key()])
            .await
            .unwrap();
        let counts = store.pending_counts().unwrap();
        assert_eq!(counts.get(&id("0")), None);
        assert_eq!(counts.get(&id("1")), Some(&2));
        let again = store.complete(&id("0"), &[loss("a", 10).key()]).await;
        assert!(
            matches!(again, Err(StoreError::NotCompleted { missing: 1, .. })),
            "completing what is not pending must fail loudly"
        );
    }

    #[tokio::test]
    async fn prune_forgets_only_old_losses() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let batch = vec![(loss("old", 10), vec![]), (loss("new", 1000), vec![])];
        store.record(&batch, |_| 0).await.unwrap();
        assert_eq!(store.prune(500).await.unwrap(), 1);
        assert!(!store.is_seen(&loss("old", 10)).unwrap());
        assert!(store.is_seen(&loss("new", 1000)).unwrap());
        assert_eq!(store.forget_customer("new").await.unwrap(), 1);
        assert!(!store.is_seen(&loss("new", 1000)).unwrap());
        assert_eq!(
            store
                .seen_of(&[loss("new", 1000), loss("old", 10)])
                .unwrap(),
            [false, false]
        );
    }

    /// A store written with hour buckets (before minute buckets): its losses stay
    /// remembered, are not queued again, are counted, pruned and forgotten; new ones go to
    /// minute buckets and the hour records are never written.
    #[tokio::test]
    async fn hour_buckets_of_older_stores_are_still_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let (old, also_old) = (loss("old", 7_200 + 30), loss("kept", 7_200 + 3_000));
        // Written as an older release wrote them: one hour record (through this store's own
        // handle: reopening a sled database at once can race its lock's release).
        let store = Store::open(dir.path()).unwrap();
        let mut bucket = Vec::new();
        for l in [&old, &also_old] {
            seen::insert(
                &mut bucket,
                &seen::entry(l.outflow_at, &l.customer_id, &l.staff_id),
            );
        }
        store
            .seen_hourly
            .insert(seen::legacy_bucket_key(7_200), bucket)
            .unwrap();
        assert!(store.is_seen(&old).unwrap() && store.is_seen(&also_old).unwrap());
        let id = DestinationId::new("r", crate::destination::DestinationKind::Wecom, "k");
        let fresh = loss("fresh", 7_200 + 60);
        let batch = vec![
            (old.clone(), vec![id.clone()]),
            (fresh.clone(), vec![id.clone()]),
        ];
        assert_eq!(
            store.record(&batch, |_| 0).await.unwrap(),
            1,
            "only the new one"
        );
        assert_eq!(store.pending(&id).unwrap().len(), 1);
        assert_eq!(store.stats().unwrap().remembered_losses, 3);
        assert_eq!(store.seen_hourly.len(), 1, "hour records are never written");
        assert_eq!(store.forget_customer("old").await.unwrap(), 1);
        assert!(!store.is_seen(&old).unwrap());
        assert_eq!(
            store.prune(7_200 + 2_000).await.unwrap(),
            1,
            "`fresh` left before it"
        );
        assert!(store.is_seen(&also_old).unwrap() && !store.is_seen(&fresh).unwrap());
    }

    #[test]
    fn second_open_is_refused_with_a_human_message() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    }
}
