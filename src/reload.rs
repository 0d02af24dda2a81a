//! Reload: "read the config again", from SIGHUP or from whoever holds the trigger.
//!
//! `run` listens on a [`Reload`] the way it listens on a [`crate::shutdown::Shutdown`]: from the
//! command line it is SIGHUP ([`Reload::on_sighup`]); in process (the tests) it is a
//! [`ReloadTrigger`], so that a reload needs no signal to the whole test process (every daemon
//! in it would reload) and no child process polled in real time.

use tokio::sync::watch;

/// Listens for reload requests; each one resolves [`Reload::recv`] once. Requests that arrive
/// while nobody listens are not queued one by one: the next `recv` sees that there were some,
/// which is all a reload needs (it reads the config as it is then).
pub struct Reload {
    source: Source,
}

enum Source {
    /// SIGHUP, installed when the `Reload` is made.
    Hangup(tokio::signal::unix::Signal),
    /// A [`ReloadTrigger`]: the count of requests it has sent.
    Trigger(watch::Receiver<u64>),
}

/// Requests a reload from the [`Reload`] made with it.
pub struct ReloadTrigger {
    tx: watch::Sender<u64>,
}

impl ReloadTrigger {
    pub fn trigger(&self) {
        self.tx.send_modify(|count| *count += 1);
    }
}

impl Reload {
    /// A reload on every SIGHUP. Installed at once: from here on SIGHUP no longer ends the
    /// process (its default action), so make this before anything shows the daemon is up.
    pub fn on_sighup() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            source: Source::Hangup(signal(SignalKind::hangup())?),
        })
    }

    /// A reload whenever the trigger says so.
    pub fn new() -> (ReloadTrigger, Reload) {
        let (tx, rx) = watch::channel(0);
        (
            ReloadTrigger { tx },
            Self {
                source: Source::Trigger(rx),
            },
        )
    }

    /// Resolves at the next reload request; never, once the trigger is gone.
    pub async fn recv(&mut self) {
        match &mut self.source {
            Source::Hangup(signal) => {
                if signal.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            Source::Trigger(rx) => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn each_trigger_is_one_reload_and_a_dropped_trigger_none() {
        async fn next(reload: &mut Reload) -> bool {
            tokio::time::timeout(Duration::from_secs(1), reload.recv())
                .await
                .is_ok()
        }
        let (trigger, mut reload) = Reload::new();
        assert!(!next(&mut reload).await, "nothing asked yet");
        trigger.trigger();
        assert!(next(&mut reload).await);
        assert!(!next(&mut reload).await, "one request, one reload");
        trigger.trigger();
        trigger.trigger();
        assert!(
            next(&mut reload).await,
            "requests that came meanwhile: one reload"
        );
        drop(trigger);
        assert!(!next(&mut reload).await, "no trigger, no reload");
    }
}
