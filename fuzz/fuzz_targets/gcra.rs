//! The rate limiter's arithmetic (`weir_policy::ratelimit::gcra`) and the
//! in-memory store on top of it (`LocalLimiter`), driven by arbitrary quotas
//! and arrival times. Invariants, not just "no panic":
//!
//! - `Quota::new` refuses exactly the quotas that make no limit, and computes
//!   emission `per / rate` (at least 1 ns) and tolerance `emission * burst`;
//!   `divided` never goes below one request;
//! - in any stretch of time from `t_i` to `t_j`, at most
//!   `burst + (t_j - t_i) / emission` requests are admitted;
//! - a key with a full bucket (no state, or a TAT in the past) is admitted
//!   with `remaining = burst - 1`, and an old TAT decides like no entry;
//! - `remaining` is exact: that many more requests pass at the same instant,
//!   and the next one does not;
//! - a denied request costs nothing (TAT unchanged), and `retry_after` is
//!   exact: a request that long later passes, one nanosecond earlier does not;
//! - the local store (sharded, forgetting idle keys) decides exactly as the
//!   arithmetic does with one TAT per key.
//!
//! Times stay below 2^62 ns (146 years): the store counts from its own start.
#![no_main]

use std::collections::HashMap;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use tokio::time::Instant;
use weir_policy::ratelimit::gcra::{Decision, Quota, decide};
use weir_policy::ratelimit::local::LocalLimiter;

const MAX_TIME: u64 = 1 << 62;
const YEAR_NS: u64 = 365 * 24 * 3600 * 1_000_000_000;

fn quota_numbers(u: &mut Unstructured<'_>) -> Result<(u64, Duration, u64)> {
    let rate = if u.ratio(7, 8)? {
        u.int_in_range(0..=2000)?
    } else {
        u.arbitrary()?
    };
    let per = match u.int_in_range(0..=3)? {
        0 => Duration::from_secs(1),
        1 => Duration::from_millis(u.int_in_range(0..=120_000)?),
        2 => Duration::from_nanos(u.arbitrary()?),
        _ => Duration::new(u.arbitrary()?, u.int_in_range(0..=999_999_999)?),
    };
    let burst = if u.ratio(7, 8)? {
        u.int_in_range(0..=300)?
    } else {
        u.arbitrary()?
    };
    Ok((rate, per, burst))
}

fn check_quota(rate: u64, per: Duration, burst: u64) -> Option<Quota> {
    let q = Quota::new(rate, per, burst);
    let per_ns = u64::try_from(per.as_nanos()).ok();
    let expected = (rate > 0 && burst > 0 && !per.is_zero())
        .then_some(())
        .and(per_ns)
        .and_then(|p| {
            let e = (p / rate).max(1);
            e.checked_mul(burst)
                .filter(|t| *t <= 100 * YEAR_NS)
                .map(|t| (e, t))
        });
    match (&q, expected) {
        (Some(q), Some((e, t))) => {
            assert_eq!((q.rate, q.per, q.burst), (rate, per, burst));
            assert_eq!((q.emission_ns, q.tolerance_ns), (e, t));
        }
        (None, None) => {}
        _ => panic!("Quota::new({rate}, {per:?}, {burst}) = {q:?}, expected {expected:?}"),
    }
    if let Some(q) = &q {
        for n in [0, 1, 2, 3, 7, u32::MAX] {
            let d = q.divided(n);
            assert!(d.rate >= 1 && d.burst >= 1, "{d:?}");
            assert!(d.rate <= q.rate && d.burst <= q.burst, "{d:?}");
        }
    }
    q
}

/// Checks one decision against the definition; returns the TAT to keep.
fn step(q: &Quota, tat: Option<u64>, now: u64) -> (Decision, u64) {
    let (d, new) = decide(q, tat, now);
    if tat.is_none_or(|t| t <= now) {
        assert_eq!(
            (d, new),
            decide(q, None, now),
            "an old TAT decides unlike no entry"
        );
        assert!(d.allowed, "a full bucket refused");
        assert_eq!(d.remaining, q.burst - 1);
    }
    if d.allowed {
        let base = tat.unwrap_or(now).max(now);
        assert_eq!(new, base + q.emission_ns);
        assert!(d.remaining < q.burst);
        assert_eq!(d.retry_after, Duration::ZERO);
        assert_eq!(d.reset, Duration::from_nanos(new - now));
        if d.remaining <= 64 {
            // Exactly `remaining` more pass at this instant.
            let mut t = new;
            for i in 0..d.remaining {
                let (d2, t2) = decide(q, Some(t), now);
                assert!(
                    d2.allowed,
                    "request {i} of {} remaining refused",
                    d.remaining
                );
                t = t2;
            }
            assert!(
                !decide(q, Some(t), now).0.allowed,
                "more than remaining passed"
            );
        }
    } else {
        let tat = tat.expect("a denied key has state");
        assert_eq!(new, tat, "a denied request changed the TAT");
        assert_eq!(d.remaining, 0);
        assert!(d.retry_after > Duration::ZERO);
        let wait = u64::try_from(d.retry_after.as_nanos()).expect("retry_after fits");
        assert!(
            decide(q, Some(tat), now + wait).0.allowed,
            "refused after retry_after"
        );
        assert!(
            !decide(q, Some(tat), now + wait - 1).0.allowed,
            "retry_after too long"
        );
    }
    (d, new)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((rate, per, burst)) = quota_numbers(&mut u) else {
        return;
    };
    let Some(q) = check_quota(rate, per, burst) else {
        return;
    };
    let Ok(start) = u.int_in_range(0..=MAX_TIME / 2) else {
        return;
    };

    // One key: the arithmetic alone, with the window bound over all pairs.
    let mut now = start;
    let mut tat = None;
    let mut admitted: Vec<u64> = Vec::new();
    // Several keys: the local store against the arithmetic, key by key.
    let limiter = LocalLimiter::new(q, 64);
    let epoch = Instant::now();
    let mut model: HashMap<u8, u64> = HashMap::new();
    for _ in 0..256 {
        let Ok(gap) = (match u.int_in_range(0..=3u8) {
            Ok(0) => Ok(0),
            Ok(1) => u.int_in_range(0..=q.emission_ns.saturating_mul(2)),
            Ok(2) => u.int_in_range(0..=q.tolerance_ns.saturating_mul(2)),
            Ok(_) => u.arbitrary::<u32>().map(u64::from),
            Err(e) => Err(e),
        }) else {
            break;
        };
        now = now.saturating_add(gap).min(MAX_TIME);
        let (d, t) = step(&q, tat, now);
        tat = Some(t);
        if d.allowed {
            admitted.push(now);
            let last = admitted.len() - 1;
            for (i, ti) in admitted.iter().enumerate() {
                let k = (last - i + 1) as u64;
                let bound = q.burst.saturating_add((now - ti) / q.emission_ns);
                assert!(
                    k <= bound,
                    "{k} admitted within {} ns (bound {bound})",
                    now - ti
                );
            }
        }

        let Ok(key) = u.int_in_range(0..=7u8) else {
            break;
        };
        let offset = now - start;
        let got = limiter.check_at(&key.to_string(), epoch + Duration::from_nanos(offset));
        let (want, t) = decide(&q, model.get(&key).copied(), offset);
        if want.allowed {
            model.insert(key, t);
        }
        assert_eq!(
            got, want,
            "the local store decided unlike the arithmetic for key {key}"
        );
    }
});
