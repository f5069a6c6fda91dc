//! Rate-limit response headers.
//!
//! The IETF httpapi draft (draft-ietf-httpapi-ratelimit-headers) uses two
//! structured-field lists, one item per policy:
//!
//! ```text
//! RateLimit-Policy: "per-consumer";q=100;w=1, "global";q=5000;w=1
//! RateLimit: "per-consumer";r=42;t=1, "global";r=4711;t=1
//! ```
//!
//! `q` is the quota (`rate`), `w` the window in seconds (`per`), `r` the
//! requests remaining now, `t` the seconds until the quota is fully available
//! again. The legacy `X-RateLimit-Limit/Remaining/Reset` trio describes only
//! the most constrained policy (fewest remaining).

use std::fmt::Write as _;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::gcra::{Decision, Quota};
use crate::config::HeaderStyle;

/// One policy's contribution to the headers of a response.
pub(crate) struct Reported<'a> {
    pub(crate) name: &'a str,
    pub(crate) quota: &'a Quota,
    /// `None` when the backend could not decide (failure mode `open`).
    pub(crate) decision: Option<Decision>,
}

pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

pub(crate) fn write(style: HeaderStyle, reported: &[Reported<'_>], out: &mut HeaderMap) {
    if reported.is_empty() || style == HeaderStyle::None {
        return;
    }
    if matches!(style, HeaderStyle::Draft | HeaderStyle::Both) {
        let mut policy = String::new();
        let mut state = String::new();
        for r in reported {
            let sep = if policy.is_empty() { "" } else { ", " };
            let _ = write!(
                policy,
                "{sep}\"{}\";q={};w={}",
                r.name,
                r.quota.rate,
                ceil_secs(r.quota.per).max(1)
            );
            if let Some(d) = r.decision {
                let sep = if state.is_empty() { "" } else { ", " };
                let t = if d.allowed {
                    ceil_secs(d.reset)
                } else {
                    ceil_secs(d.retry_after)
                };
                let _ = write!(state, "{sep}\"{}\";r={};t={}", r.name, d.remaining, t);
            }
        }
        insert(out, "ratelimit-policy", &policy);
        if !state.is_empty() {
            insert(out, "ratelimit", &state);
        }
    }
    if matches!(style, HeaderStyle::Legacy | HeaderStyle::Both)
        && let Some((r, d)) = reported
            .iter()
            .filter_map(|r| r.decision.map(|d| (r, d)))
            .min_by_key(|(_, d)| d.remaining)
    {
        insert(out, "x-ratelimit-limit", &r.quota.rate.to_string());
        insert(out, "x-ratelimit-remaining", &d.remaining.to_string());
        let reset = if d.allowed { d.reset } else { d.retry_after };
        insert(out, "x-ratelimit-reset", &ceil_secs(reset).to_string());
    }
}

fn insert(out: &mut HeaderMap, name: &'static str, value: &str) {
    // Policy names are validated as header-safe tokens at config time.
    if let Ok(v) = HeaderValue::from_str(value) {
        out.insert(HeaderName::from_static(name), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draft_and_legacy() {
        let q1 = Quota::new(100, Duration::from_secs(1), 200).unwrap();
        let q2 = Quota::new(5000, Duration::from_secs(60), 5000).unwrap();
        let d1 = Decision {
            allowed: true,
            remaining: 7,
            retry_after: Duration::ZERO,
            reset: Duration::from_millis(1500),
        };
        let d2 = Decision {
            allowed: true,
            remaining: 4000,
            retry_after: Duration::ZERO,
            reset: Duration::from_secs(12),
        };
        let reported = [
            Reported {
                name: "a",
                quota: &q1,
                decision: Some(d1),
            },
            Reported {
                name: "b",
                quota: &q2,
                decision: Some(d2),
            },
        ];
        let mut h = HeaderMap::new();
        write(HeaderStyle::Both, &reported, &mut h);
        assert_eq!(h["ratelimit-policy"], "\"a\";q=100;w=1, \"b\";q=5000;w=60");
        assert_eq!(h["ratelimit"], "\"a\";r=7;t=2, \"b\";r=4000;t=12");
        assert_eq!(h["x-ratelimit-limit"], "100");
        assert_eq!(h["x-ratelimit-remaining"], "7");
        assert_eq!(h["x-ratelimit-reset"], "2");
        let mut h = HeaderMap::new();
        write(HeaderStyle::Draft, &reported, &mut h);
        assert!(h.get("x-ratelimit-limit").is_none());
    }
}
