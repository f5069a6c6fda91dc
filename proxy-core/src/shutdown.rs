//! Shutdown signalling: one trigger, many cheap waiters.

use std::future::Future;

use tokio::sync::watch;

/// Fires the shutdown; dropping it fires it too, so a crashed owner never
/// leaves servers running forever.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A clonable handle that resolves once shutdown has been triggered.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger and signal.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// A signal that never fires (for tests and tools that run until dropped).
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        Shutdown(rx)
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is triggered (or the trigger is dropped).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|fired| *fired).await;
        }
    }

    /// A signal that fires when `fut` completes, e.g. on SIGTERM.
    pub fn from_future(fut: impl Future<Output = ()> + Send + 'static) -> Self {
        let (trigger, signal) = channel();
        tokio::spawn(async move {
            fut.await;
            trigger.trigger();
        });
        signal
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn os_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_on_trigger_and_on_drop() {
        let (t, s) = channel();
        let w = s.wait();
        t.trigger();
        w.await;
        assert!(s.is_triggered());

        let (t, s) = channel();
        drop(t);
        s.wait().await;
    }
}
