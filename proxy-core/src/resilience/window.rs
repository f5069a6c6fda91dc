//! A lock-free sliding-window counter, shared by the retry budget and the
//! breaker's success-rate window.
//!
//! The window is split into a fixed number of buckets. Each bucket is one
//! `AtomicU64` holding `(slot tag << 32) | count`, so an increment is a single
//! compare-and-swap and a stale bucket is recognised (and recycled) by its tag
//! without any lock. The sum covers the current bucket and the ones before it
//! that still lie inside the window, so the effective window slides in steps of
//! `window / buckets`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub(crate) struct SlidingCounter {
    buckets: Box<[AtomicU64]>,
    bucket_nanos: u64,
    origin: Instant,
}

fn pack(tag: u32, count: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(count)
}

fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

impl SlidingCounter {
    /// A counter over `window`, split in `buckets` buckets (at least one).
    pub(crate) fn new(window: Duration, buckets: usize, origin: Instant) -> Self {
        let buckets = buckets.max(1);
        let bucket_nanos = (window.as_nanos() / buckets as u128).max(1) as u64;
        SlidingCounter {
            buckets: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            bucket_nanos,
            origin,
        }
    }

    fn slot(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_nanos() / u128::from(self.bucket_nanos))
            as u64
    }

    /// Adds `n` at `now`.
    pub(crate) fn add(&self, now: Instant, n: u32) {
        self.update(now, |c| c.saturating_add(n));
    }

    /// Takes back `n` from the current bucket (never below zero); used to undo a
    /// speculative [`add`](Self::add).
    pub(crate) fn sub(&self, now: Instant, n: u32) {
        self.update(now, |c| c.saturating_sub(n));
    }

    fn update(&self, now: Instant, f: impl Fn(u32) -> u32) {
        let slot = self.slot(now);
        let tag = slot as u32;
        let bucket = &self.buckets[(slot % self.buckets.len() as u64) as usize];
        let mut cur = bucket.load(Ordering::Relaxed);
        loop {
            let (t, c) = unpack(cur);
            let base = if t == tag { c } else { 0 };
            let new = pack(tag, f(base));
            match bucket.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The total over the window ending at `now`.
    pub(crate) fn sum(&self, now: Instant) -> u64 {
        let tag = self.slot(now) as u32;
        let n = self.buckets.len() as u32;
        self.buckets
            .iter()
            .map(|b| unpack(b.load(Ordering::Acquire)))
            .filter(|(t, _)| tag.wrapping_sub(*t) < n)
            .map(|(_, c)| u64::from(c))
            .sum()
    }

    /// Forgets everything counted so far.
    pub(crate) fn clear(&self) {
        for b in self.buckets.iter() {
            b.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_within_window_and_forgets_old_buckets() {
        let c = SlidingCounter::new(Duration::from_secs(10), 10, Instant::now());
        c.add(Instant::now(), 3);
        tokio::time::advance(Duration::from_secs(5)).await;
        c.add(Instant::now(), 2);
        assert_eq!(c.sum(Instant::now()), 5);
        tokio::time::advance(Duration::from_secs(6)).await;
        // the first bucket (t=0..1s) is now outside the 10 s window
        assert_eq!(c.sum(Instant::now()), 2);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(c.sum(Instant::now()), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn recycled_bucket_starts_from_zero() {
        let c = SlidingCounter::new(Duration::from_secs(2), 2, Instant::now());
        c.add(Instant::now(), 7);
        tokio::time::advance(Duration::from_secs(2)).await;
        // same bucket index, new slot: the old 7 must not leak in
        c.add(Instant::now(), 1);
        assert_eq!(c.sum(Instant::now()), 1);
        c.sub(Instant::now(), 5);
        assert_eq!(c.sum(Instant::now()), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn clear_resets() {
        let c = SlidingCounter::new(Duration::from_secs(1), 4, Instant::now());
        c.add(Instant::now(), 9);
        c.clear();
        assert_eq!(c.sum(Instant::now()), 0);
    }
}
