//! Per-second figures from cumulative counters: request and error rates and
//! latency quantiles over the interval between two dashboard ticks.
//!
//! Counters only ever grow, so the figures of an interval are differences of
//! two readings. The tracker keeps the previous reading; it is touched once
//! per tick (or per API call while no page is open), never by requests.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// A reading older than this is not a baseline: the rates over a long gap
/// (no page open for a while) would be averages that look current.
const STALE: Duration = Duration::from_secs(15);

/// Cumulative counters of one key (a route, a destination) at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    /// Requests answered.
    pub requests: f64,
    /// Of those, the failures (5xx, or what the key counts as one).
    pub errors: f64,
    /// The latency histogram's cumulative buckets `(le seconds, count)`.
    pub buckets: Vec<(f64, f64)>,
    /// Further counters reported per second under their name.
    pub other: BTreeMap<String, f64>,
}

/// What one key did over the last interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rates {
    /// Requests per second.
    pub rps: Option<f64>,
    /// Failed share of the interval's requests, 0–1; `None` without requests.
    pub error_rate: Option<f64>,
    /// Latency quantiles estimated from the histogram, milliseconds.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The further counters, per second.
    pub per_second: BTreeMap<String, f64>,
}

/// Keeps the previous reading and turns the next one into [`Rates`].
#[derive(Debug, Default)]
pub struct RateTracker {
    previous: Mutex<Option<(Instant, BTreeMap<String, Counts>)>>,
}

impl RateTracker {
    /// The rates of each key between the previous reading and `now`; keys
    /// without a fresh baseline get empty figures.
    pub fn update(&self, now: BTreeMap<String, Counts>) -> BTreeMap<String, Rates> {
        self.update_at(Instant::now(), now)
    }

    fn update_at(&self, at: Instant, now: BTreeMap<String, Counts>) -> BTreeMap<String, Rates> {
        let mut previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        let baseline = previous
            .as_ref()
            .filter(|(t, _)| at.saturating_duration_since(*t) <= STALE)
            .filter(|(t, _)| at > *t);
        let out = now
            .iter()
            .map(|(key, counts)| {
                let rates = match baseline.and_then(|(t, before)| Some((t, before.get(key)?))) {
                    Some((t, before)) => rates(before, counts, at.duration_since(*t)),
                    None => Rates::default(),
                };
                (key.clone(), rates)
            })
            .collect();
        *previous = Some((at, now));
        out
    }
}

fn rates(before: &Counts, now: &Counts, over: Duration) -> Rates {
    let secs = over.as_secs_f64().max(1e-3);
    // A counter that went down was recreated (a route removed and added
    // back by reloads): count from zero.
    let delta = |a: f64, b: f64| if b >= a { b - a } else { b };
    let requests = delta(before.requests, now.requests);
    let errors = delta(before.errors, now.errors).min(requests);
    let buckets: Vec<(f64, f64)> = now
        .buckets
        .iter()
        .map(|&(le, count)| {
            let was = before
                .buckets
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0.0, |b| b.1);
            (le, delta(was, count))
        })
        .collect();
    Rates {
        rps: Some(requests / secs),
        error_rate: (requests > 0.0).then(|| errors / requests),
        p50_ms: quantile(&buckets, 0.5).map(|s| s * 1e3),
        p99_ms: quantile(&buckets, 0.99).map(|s| s * 1e3),
        per_second: now
            .other
            .iter()
            .map(|(k, v)| {
                let was = before.other.get(k).copied().unwrap_or(0.0);
                (k.clone(), delta(was, *v) / secs)
            })
            .collect(),
    }
}

/// The `q` quantile of cumulative buckets, interpolated linearly inside the
/// bucket it falls in (as PromQL's `histogram_quantile` does). Past the last
/// finite bound it answers that bound.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            let share = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * share);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: f64, errors: f64, buckets: &[(f64, f64)]) -> Counts {
        Counts {
            requests,
            errors,
            buckets: buckets.to_vec(),
            other: BTreeMap::from([("refused".to_owned(), errors)]),
        }
    }

    #[test]
    fn quantiles_interpolate_inside_a_bucket() {
        let b = [(0.01, 50.0), (0.1, 100.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(&b, 0.5), Some(0.01));
        let p75 = quantile(&b, 0.75).unwrap();
        assert!((p75 - 0.055).abs() < 1e-9, "{p75}");
        assert_eq!(quantile(&[(0.01, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
        assert_eq!(
            quantile(&[(0.01, 0.0), (f64::INFINITY, 4.0)], 0.5),
            Some(0.01)
        );
    }

    #[test]
    fn rates_are_differences_over_the_interval() {
        let t = RateTracker::default();
        let t0 = Instant::now();
        let first = t.update_at(
            t0,
            BTreeMap::from([("r".to_owned(), counts(10.0, 1.0, &[(0.1, 10.0)]))]),
        );
        assert_eq!(first["r"], Rates::default(), "no baseline yet");
        let next = t.update_at(
            t0 + Duration::from_secs(2),
            BTreeMap::from([("r".to_owned(), counts(30.0, 6.0, &[(0.1, 30.0)]))]),
        );
        assert_eq!(next["r"].rps, Some(10.0));
        assert_eq!(next["r"].error_rate, Some(0.25));
        assert_eq!(next["r"].per_second["refused"], 2.5);
        assert!(next["r"].p50_ms.unwrap() > 0.0);
        let stale = t.update_at(
            t0 + Duration::from_secs(60),
            BTreeMap::from([("r".to_owned(), counts(40.0, 6.0, &[(0.1, 40.0)]))]),
        );
        assert_eq!(stale["r"].rps, None, "a stale baseline is not used");
    }
}
