//! Shutdown: one signal, many listeners.
//!
//! [`Shutdown`] is a cheap handle every task holds; it resolves [`Shutdown::recv`] once
//! [`ShutdownTrigger::trigger`] is called or, with [`Shutdown::on_signals`], when SIGINT or
//! SIGTERM arrives. A watch channel keeps the state, so a task that checks late still sees it.

use tokio::sync::watch;

/// Listens for the shutdown signal.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Sends the shutdown signal.
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// A handle that never fires, for one-shot commands.
    #[cfg(any(test, feature = "demo"))]
    pub fn never() -> Shutdown {
        // With the trigger dropped unfired, `recv` stays pending forever.
        Self::new().1
    }

    /// A handle that fires on SIGINT or SIGTERM.
    pub fn on_signals() -> Shutdown {
        let (trigger, shutdown) = Self::new();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested; finishing the current step");
            trigger.trigger();
        });
        shutdown
    }

    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown was requested.
    pub async fn recv(&mut self) {
        // An error means the trigger is gone without firing: then shutdown never comes.
        if self.rx.wait_for(|down| *down).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
