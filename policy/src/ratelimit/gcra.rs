//! GCRA (generic cell rate algorithm): the whole state of a limit for one key
//! is a single number, the theoretical arrival time (TAT) of the next request.
//!
//! Pure functions over nanoseconds, with `now` passed in, so the math is tested
//! without clocks. A stored TAT at or before `now` means exactly the same as no
//! entry (a full bucket), which is what lets the local store forget idle keys
//! without changing any decision. The Redis script in `redis.rs` is a line by
//! line transcription of [`decide`].

use std::time::Duration;

/// A validated limit: `rate` requests per `per`, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    pub rate: u64,
    pub per: Duration,
    pub burst: u64,
    /// Time one request "costs": `per / rate`.
    pub emission_ns: u64,
    /// How far ahead of `now` the TAT may run: `emission * burst`.
    pub tolerance_ns: u64,
}

impl Quota {
    /// `None` when the numbers do not make a limit (zero rate, zero period,
    /// zero burst, or a tolerance beyond ~100 years).
    pub fn new(rate: u64, per: Duration, burst: u64) -> Option<Self> {
        if rate == 0 || burst == 0 || per.is_zero() {
            return None;
        }
        let per_ns = u64::try_from(per.as_nanos()).ok()?;
        let emission_ns = (per_ns / rate).max(1);
        let tolerance_ns = emission_ns.checked_mul(burst)?;
        if tolerance_ns > 100 * 365 * 24 * 3600 * 1_000_000_000 {
            return None;
        }
        Some(Self {
            rate,
            per,
            burst,
            emission_ns,
            tolerance_ns,
        })
    }

    /// The same limit shared among `n` replicas: rate and burst divided by
    /// `n`, never below one request.
    pub fn divided(&self, n: u32) -> Self {
        let n = u64::from(n.max(1));
        let rate = (self.rate / n).max(1);
        let burst = (self.burst / n).max(1);
        Self::new(rate, self.per, burst).unwrap_or(*self)
    }
}

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests that could still pass right now.
    pub remaining: u64,
    /// When denied: how long until one request would pass.
    pub retry_after: Duration,
    /// How long until the bucket is full again.
    pub reset: Duration,
}

/// Decides one request arriving at `now` given the stored TAT (`None` if the
/// key is unknown). Returns the decision and the TAT to store (unchanged when
/// denied: a rejected request costs nothing).
pub fn decide(q: &Quota, tat: Option<u64>, now: u64) -> (Decision, u64) {
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(q.emission_ns);
    let limit = now.saturating_add(q.tolerance_ns);
    if new_tat > limit {
        let d = Decision {
            allowed: false,
            remaining: 0,
            retry_after: Duration::from_nanos(new_tat - limit),
            reset: Duration::from_nanos(tat - now),
        };
        return (d, tat);
    }
    let d = Decision {
        allowed: true,
        remaining: (limit - new_tat) / q.emission_ns,
        retry_after: Duration::ZERO,
        reset: Duration::from_nanos(new_tat - now),
    };
    (d, new_tat)
}

/// What an admitting decision looks like when the request was not recorded
/// after all (another limit refused it): one more request remains, and the
/// bucket is one emission interval closer to full.
pub fn uncharged(q: &Quota, d: Decision) -> Decision {
    Decision {
        remaining: d.remaining.saturating_add(1).min(q.burst),
        reset: d.reset.saturating_sub(Duration::from_nanos(q.emission_ns)),
        ..d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn run(q: &Quota, times: impl IntoIterator<Item = u64>) -> usize {
        let mut tat = None;
        let mut admitted = 0;
        for now in times {
            let (d, t) = decide(q, tat, now);
            tat = Some(t);
            admitted += usize::from(d.allowed);
        }
        admitted
    }

    #[test]
    fn burst_then_rate() {
        let q = Quota::new(10, Duration::from_secs(1), 5).unwrap();
        // 100 requests at the same instant: exactly the burst.
        assert_eq!(run(&q, std::iter::repeat_n(0, 100)), 5);
        // Every 1ms for 10s: burst + 10/s * 10s (within one request).
        let admitted = run(&q, (0..10_000).map(|i| i * SEC / 1000));
        assert!((104..=106).contains(&admitted), "{admitted}");
    }

    #[test]
    fn remaining_and_retry_after() {
        let q = Quota::new(1, Duration::from_secs(1), 3).unwrap();
        let (d, t) = decide(&q, None, 0);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
        assert_eq!(d.reset, Duration::from_secs(1));
        let (_, t) = decide(&q, Some(t), 0);
        let (d, t) = decide(&q, Some(t), 0);
        assert_eq!(d.remaining, 0);
        let (d, t2) = decide(&q, Some(t), 0);
        assert!(!d.allowed);
        assert_eq!(t2, t, "a denied request costs nothing");
        assert_eq!(d.retry_after, Duration::from_secs(1));
        // An admitting decision not recorded reads as the bucket before it.
        let (first, _) = decide(&q, None, 0);
        let u = uncharged(&q, first);
        assert_eq!((u.remaining, u.reset), (3, Duration::ZERO));
        // After the retry-after, one passes.
        assert!(decide(&q, Some(t), SEC).0.allowed);
    }

    #[test]
    fn old_tat_is_a_fresh_bucket() {
        let q = Quota::new(5, Duration::from_secs(1), 5).unwrap();
        assert_eq!(decide(&q, Some(3), 100 * SEC), decide(&q, None, 100 * SEC));
    }

    #[test]
    fn invalid_quotas_and_division() {
        assert!(Quota::new(0, Duration::from_secs(1), 1).is_none());
        assert!(Quota::new(1, Duration::ZERO, 1).is_none());
        assert!(Quota::new(1, Duration::from_secs(1), 0).is_none());
        let q = Quota::new(100, Duration::from_secs(1), 50)
            .unwrap()
            .divided(3);
        assert_eq!((q.rate, q.burst), (33, 16));
        let q = Quota::new(2, Duration::from_secs(1), 1).unwrap().divided(5);
        assert_eq!((q.rate, q.burst), (1, 1));
    }
}
