//! The slowest recent requests of one key (a route), for links from the
//! dashboard to their traces.
//!
//! The request path calls [`SlowRing::offer`] once per response: one relaxed
//! atomic load and a compare. Only a request slower than the fastest one the
//! ring holds goes further, and then it takes the ring's own lock with
//! `try_lock` (never waits: under contention the sample is dropped, this is
//! a sample, not a record). So the ring costs nothing measurable when nobody
//! looks, and once full it admits fewer and fewer requests.
//!
//! Entries age out when the dashboard reads the ring ([`SlowRing::recent`]),
//! which lowers the bar again: "slowest recent", not "slowest ever".

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// How many requests a ring keeps.
pub const RING_SIZE: usize = 4;

/// One slow request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlowRequest {
    pub latency_ms: f64,
    /// W3C trace id (32 hex digits), when the request was traced.
    pub trace_id: Option<String>,
    pub request_id: Option<String>,
    /// When it finished, Unix milliseconds.
    pub at_unix_ms: u64,
    pub status: u16,
}

/// The [`RING_SIZE`] slowest recent requests of one key.
#[derive(Debug, Default)]
pub struct SlowRing {
    /// Microseconds a request must exceed to enter: the fastest entry once
    /// the ring is full, 0 before.
    floor_us: AtomicU64,
    entries: Mutex<Vec<SlowRequest>>,
}

impl SlowRing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Offers one finished request. `details` is only called when the
    /// request enters the ring, so ids are formatted only then.
    #[inline]
    pub fn offer(
        &self,
        latency: Duration,
        details: impl FnOnce() -> (Option<String>, Option<String>, u16),
    ) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if us <= self.floor_us.load(Ordering::Relaxed) {
            return;
        }
        self.insert(us, details);
    }

    #[cold]
    fn insert(&self, us: u64, details: impl FnOnce() -> (Option<String>, Option<String>, u16)) {
        let Ok(mut entries) = self.entries.try_lock() else {
            return;
        };
        let (trace_id, request_id, status) = details();
        let entry = SlowRequest {
            latency_ms: us as f64 / 1e3,
            trace_id,
            request_id,
            at_unix_ms: unix_ms(SystemTime::now()),
            status,
        };
        if entries.len() < RING_SIZE {
            entries.push(entry);
        } else if let Some(min) = entries
            .iter_mut()
            .min_by(|a, b| a.latency_ms.total_cmp(&b.latency_ms))
            && min.latency_ms < entry.latency_ms
        {
            *min = entry;
        }
        self.floor_us.store(floor(&entries), Ordering::Relaxed);
    }

    /// The entries younger than `max_age`, slowest first; older ones are
    /// dropped so slower-than-now history does not keep recent ones out.
    pub fn recent(&self, max_age: Duration) -> Vec<SlowRequest> {
        let now = unix_ms(SystemTime::now());
        let max_age = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|e| e.at_unix_ms.saturating_add(max_age) > now);
        self.floor_us.store(floor(&entries), Ordering::Relaxed);
        let mut out = entries.clone();
        out.sort_by(|a, b| b.latency_ms.total_cmp(&a.latency_ms));
        out
    }
}

fn floor(entries: &[SlowRequest]) -> u64 {
    if entries.len() < RING_SIZE {
        return 0;
    }
    entries
        .iter()
        .map(|e| (e.latency_ms * 1e3) as u64)
        .min()
        .unwrap_or(0)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(ring: &SlowRing, ms: u64, id: &str) -> bool {
        let mut called = false;
        ring.offer(Duration::from_millis(ms), || {
            called = true;
            (Some(id.to_owned()), None, 200)
        });
        called
    }

    #[test]
    fn keeps_the_slowest_and_skips_faster_requests_without_formatting_them() {
        let ring = SlowRing::new();
        for (i, ms) in [5, 1, 9, 3].into_iter().enumerate() {
            assert!(offer(&ring, ms, &format!("t{i}")));
        }
        assert!(!offer(&ring, 1, "fast"), "not slower than the fastest kept");
        assert!(offer(&ring, 7, "slow"));
        let kept: Vec<f64> = ring
            .recent(Duration::from_secs(60))
            .iter()
            .map(|e| e.latency_ms)
            .collect();
        assert_eq!(kept, [9.0, 7.0, 5.0, 3.0]);
        assert_eq!(ring.recent(Duration::ZERO).len(), 0, "aged out");
        assert!(
            offer(&ring, 1, "after"),
            "the bar drops once entries age out"
        );
    }
}
