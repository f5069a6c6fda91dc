//! The retry budget: retries may add at most `ratio` × the live request rate,
//! plus a floor of `min_per_second`, over a sliding window.
//!
//! A budget is what keeps a failing dependency from being hit by a retry storm:
//! with the defaults (20 %, 10/s, 10 s) a dependency that fails every request
//! sees at most 1.2 × the offered load plus 10 requests a second, never the
//! `max_attempts`× multiplication a plain retry policy produces. One budget is
//! shared by all requests to one destination; its counters are lock-free
//! sliding windows (see `window.rs`), so checking it takes no lock.

use std::time::Duration;

use tokio::time::Instant;

use super::window::SlidingCounter;

/// Buckets per window: the window slides in steps of a tenth of its length.
const BUCKETS: usize = 10;

/// The budget's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSettings {
    /// Retries allowed per original request, on average over the window.
    pub ratio: f64,
    /// Retries always allowed per second, whatever the request rate.
    pub min_per_second: u32,
    /// How far back requests and retries are counted.
    pub window: Duration,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        BudgetSettings {
            ratio: 0.2,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }
    }
}

/// A shared retry budget for one destination.
pub struct RetryBudget {
    settings: BudgetSettings,
    floor: f64,
    requests: SlidingCounter,
    retries: SlidingCounter,
}

impl std::fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBudget")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl RetryBudget {
    /// A budget that starts empty of requests (only the floor is available).
    pub fn new(settings: BudgetSettings) -> Self {
        let now = Instant::now();
        RetryBudget {
            settings,
            floor: f64::from(settings.min_per_second) * settings.window.as_secs_f64(),
            requests: SlidingCounter::new(settings.window, BUCKETS, now),
            retries: SlidingCounter::new(settings.window, BUCKETS, now),
        }
    }

    /// The settings this budget enforces.
    pub fn settings(&self) -> BudgetSettings {
        self.settings
    }

    /// Counts one original request (not a retry).
    pub fn deposit(&self) {
        self.requests.add(Instant::now(), 1);
    }

    /// Takes one retry from the budget; `false` when the budget is exhausted
    /// (the retry must not be made).
    pub fn try_withdraw(&self) -> bool {
        let now = Instant::now();
        // Count first, then check, then undo: concurrent withdrawals can then
        // never all pass on the same last token.
        self.retries.add(now, 1);
        let retries = self.retries.sum(now) as f64;
        if retries <= self.allowance(now) {
            true
        } else {
            self.retries.sub(now, 1);
            false
        }
    }

    /// Retries still available in the current window.
    pub fn remaining(&self) -> f64 {
        let now = Instant::now();
        (self.allowance(now) - self.retries.sum(now) as f64).max(0.0)
    }

    fn allowance(&self, now: Instant) -> f64 {
        self.settings.ratio * self.requests.sum(now) as f64 + self.floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ratio: f64, floor: u32) -> RetryBudget {
        RetryBudget::new(BudgetSettings {
            ratio,
            min_per_second: floor,
            window: Duration::from_secs(10),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn ratio_of_requests_plus_floor() {
        let b = budget(0.2, 1);
        for _ in 0..100 {
            b.deposit();
        }
        // 0.2 × 100 + 1/s × 10 s = 30 retries
        let granted = (0..100).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 30);
        assert_eq!(b.remaining(), 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn floor_alone_without_traffic() {
        let b = budget(0.2, 0);
        assert!(!b.try_withdraw());
        let b = budget(0.0, 2);
        assert_eq!((0..50).filter(|_| b.try_withdraw()).count(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn budget_refills_as_the_window_slides() {
        let b = budget(0.5, 0);
        for _ in 0..10 {
            b.deposit();
        }
        assert_eq!((0..10).filter(|_| b.try_withdraw()).count(), 5);
        tokio::time::advance(Duration::from_secs(11)).await;
        // old requests and old retries both left the window
        assert!(!b.try_withdraw());
        for _ in 0..4 {
            b.deposit();
        }
        assert_eq!((0..10).filter(|_| b.try_withdraw()).count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_withdrawals_never_exceed_allowance() {
        let b = std::sync::Arc::new(budget(0.1, 0));
        for _ in 0..1000 {
            b.deposit();
        }
        let granted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (b, g) = (b.clone(), granted.clone());
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        if b.try_withdraw() {
                            g.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(granted.load(std::sync::atomic::Ordering::Relaxed), 100);
    }
}
