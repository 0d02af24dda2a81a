//! Closing a store so that it can be opened again at once.
//!
//! sled locks its database file while any of its handles lives, and a few of those live on in
//! sled's own I/O threads for a moment after the last `Store` is dropped: the tail of a log
//! write that has already reported itself done. A command that opens a store right after
//! another command in the same process closed it (the in-process tests; `state import` after
//! `once`) found it locked and blamed a running daemon. So the last handle of a store, once
//! every handle of ours is gone, waits until sled has let go of the lock too (briefly: a
//! bounded wait), and a store is closed when its last handle is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fs2::FileExt as _;

/// Longest wait for sled's threads to let go of a closed store.
const LINGER: Duration = Duration::from_secs(2);
/// Between two tries at the lock.
const STEP: Duration = Duration::from_millis(2);

/// Held by every handle of one open store; its drop, after the last handle's, waits for the
/// store's lock to be free.
#[derive(Debug)]
pub(super) struct OpenStore(Option<PathBuf>);

impl OpenStore {
    /// For the store at `path` (`None`: a temporary store, which has no lock).
    pub(super) fn new(path: Option<&Path>) -> Self {
        Self(path.map(Path::to_owned))
    }
}

impl Drop for OpenStore {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            wait_for_lock(&path.join("db"), LINGER, || std::thread::sleep(STEP));
        }
    }
}

/// Waits until the lock on `file` can be taken (then gives it back), calling `pause` between
/// tries, for `longest` at most. A file that cannot be opened has no lock to wait for.
fn wait_for_lock(file: &Path, longest: Duration, mut pause: impl FnMut()) {
    let Ok(file) = std::fs::File::open(file) else {
        return;
    };
    let start = Instant::now();
    while file.try_lock_exclusive().is_err() && start.elapsed() < longest {
        pause();
    }
    // Dropping `file` gives the lock back if it was taken.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn a_closed_store_opens_again_at_once() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..20 {
            let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("round {round}: {e}"));
            store.db.insert(b"round", &[round as u8]).unwrap();
            store.db.flush().unwrap();
        }
    }

    #[test]
    fn the_wait_ends_when_the_lock_is_free_or_the_time_is_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"").unwrap();
        let held = std::fs::File::open(&path).unwrap();
        held.try_lock_exclusive().unwrap();
        // Held throughout: the wait gives up once its time is up (here: no time at all).
        let mut pauses = 0;
        wait_for_lock(&path, Duration::ZERO, || pauses += 1);
        assert_eq!(pauses, 0);
        // Let go after three pauses: the wait ends then.
        let mut held = Some(held);
        let mut pauses = 0;
        wait_for_lock(&path, Duration::from_secs(3600), || {
            pauses += 1;
            if pauses == 3 {
                held = None;
            }
        });
        assert_eq!((pauses, held.is_none()), (3, true));
    }
}
