//! What counts as a connection doing something.
//!
//! Bytes on the wire do not: HTTP/2 keep-alive PINGs (ours every 30 s, and
//! any the client sends) move bytes on a connection nobody uses, and used to
//! keep it open forever. A connection makes progress when a request starts or
//! ends, or when body data moves in either direction; the connection task
//! closes it when it has made none for `idle_timeout` (nothing in flight) or
//! `request_idle_timeout` (requests in flight).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// One connection's progress, shared by its requests and its idle watch.
#[derive(Debug, Clone)]
pub(crate) struct Progress(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    start: Instant,
    /// Milliseconds after `start` of the last progress.
    last_ms: AtomicU64,
    /// Requests whose response has not been fully sent (or dropped).
    busy: AtomicUsize,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self(Arc::new(Inner {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }))
    }

    /// Records progress now.
    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// When the connection last made progress.
    pub(crate) fn last(&self) -> Instant {
        self.0.start + Duration::from_millis(self.0.last_ms.load(Ordering::Relaxed))
    }

    /// Requests in flight.
    pub(crate) fn busy(&self) -> usize {
        self.0.busy.load(Ordering::Relaxed)
    }

    /// A request started; it is in flight until the guard drops (with the
    /// response body, once sent).
    pub(crate) fn begin(&self) -> Busy {
        self.0.busy.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Busy(self.clone())
    }
}

/// One request in flight.
#[derive(Debug)]
pub(crate) struct Busy(Progress);

impl Busy {
    pub(crate) fn progress(&self) -> &Progress {
        &self.0
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_mark_busy_and_progress() {
        let p = Progress::new();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(p.busy(), 0);
        let b = p.begin();
        assert_eq!(p.busy(), 1);
        assert_eq!(p.last(), p.0.start + Duration::from_secs(5));
        tokio::time::advance(Duration::from_secs(7)).await;
        drop(b);
        assert_eq!(p.busy(), 0);
        assert_eq!(p.last(), p.0.start + Duration::from_secs(12));
    }
}
