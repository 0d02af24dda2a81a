//! Reopening a store this process has just closed.
//!
//! sled locks its files while any of its handles lives, and a few of those live on in sled's
//! own I/O threads for a moment after the last `Store` is dropped: the tail of a log write
//! that has already reported itself done. A command that opens a store right after another
//! command in the same process closed it (the in-process tests; `state import` after `once`)
//! could find it locked and blame a running daemon. So the last handle of a store records when
//! it closed, and opening a store that this process closed a moment ago waits for sled's
//! threads to let go, briefly. A store held by another process, or long open here, is refused
//! at once, as before.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long after closing a store its lock may still be sled's own.
const LINGER: Duration = Duration::from_secs(2);
/// Between two tries at the lock.
const STEP: Duration = Duration::from_millis(2);

/// Stores this process closed, and when (the latest few only).
static CLOSED: Mutex<Vec<(PathBuf, Instant)>> = Mutex::new(Vec::new());

/// Held by every handle of one open store; its drop marks the store closed.
#[derive(Debug)]
pub(super) struct OpenStore(Option<PathBuf>);

impl OpenStore {
    pub(super) fn new(path: Option<&Path>) -> Self {
        Self(path.map(Path::to_owned))
    }
}

impl Drop for OpenStore {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let mut closed = CLOSED.lock().unwrap_or_else(|e| e.into_inner());
            closed.retain(|(p, at)| *p != path && at.elapsed() < LINGER);
            closed.push((path, Instant::now()));
        }
    }
}

/// Calls `open` until it stops finding the store `locked`, for as long as the lock may still
/// be this process's own; its last answer otherwise.
pub(super) fn retrying<T, E>(
    path: &Path,
    locked: impl Fn(&E) -> bool,
    mut open: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    loop {
        match open() {
            Err(e) if locked(&e) && closed_here_lately(path) => std::thread::sleep(STEP),
            other => return other,
        }
    }
}

fn closed_here_lately(path: &Path) -> bool {
    let closed = CLOSED.lock().unwrap_or_else(|e| e.into_inner());
    closed
        .iter()
        .any(|(p, at)| p == path && at.elapsed() < LINGER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_store_closed_here_lately_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        assert!(!closed_here_lately(&path));
        drop(OpenStore::new(Some(&path)));
        assert!(closed_here_lately(&path));
        assert!(!closed_here_lately(&dir.path().join("other")));
        // Locked for three tries, then free: waited for.
        let mut tries = 0;
        let opened = retrying(
            &path,
            |e: &&str| *e == "locked",
            || {
                tries += 1;
                if tries < 3 {
                    Err("locked")
                } else {
                    Ok(tries)
                }
            },
        );
        assert_eq!(opened, Ok(3));
        // Another store, locked: refused at once.
        let mut tries = 0;
        let other = dir.path().join("other");
        let refused = retrying(
            &other,
            |e: &&str| *e == "locked",
            || {
                tries += 1;
                Err::<(), _>("locked")
            },
        );
        assert_eq!((refused, tries), (Err("locked"), 1));
    }
}
