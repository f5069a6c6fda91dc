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

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::LimitPolicy;
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

/// The `RateLimit-Policy` value of a route's limits. It depends on the
/// config only, so it is rendered once when the route is compiled and cloned
/// (a reference count) into each response.
pub(crate) fn policy_header(limits: &[std::sync::Arc<LimitPolicy>]) -> Option<HeaderValue> {
    if limits.is_empty() {
        return None;
    }
    let mut out = BytesMut::with_capacity(32 * limits.len());
    for (i, l) in limits.iter().enumerate() {
        if i > 0 {
            out.put_slice(b", ");
        }
        let q = &l.spec.quota;
        item(
            &mut out,
            &l.name,
            b";q=",
            q.rate,
            b";w=",
            ceil_secs(q.per).max(1),
        );
    }
    // Policy names are validated as header-safe tokens at config time.
    HeaderValue::from_maybe_shared(out.freeze()).ok()
}

/// Writes `"name";<k1><v1><k2><v2>` with integers formatted by `itoa`
/// (`format!` cost about 3,000 instructions per policy and request).
fn item(out: &mut BytesMut, name: &str, k1: &[u8], v1: u64, k2: &[u8], v2: u64) {
    let mut num = itoa::Buffer::new();
    out.put_u8(b'"');
    out.put_slice(name.as_bytes());
    out.put_u8(b'"');
    out.put_slice(k1);
    out.put_slice(num.format(v1).as_bytes());
    out.put_slice(k2);
    out.put_slice(num.format(v2).as_bytes());
}

/// Adds the rate-limit headers of `style` to `out`. `policy` is the route's
/// [`policy_header`].
pub(crate) fn write(
    style: HeaderStyle,
    policy: Option<&HeaderValue>,
    reported: &[Reported<'_>],
    out: &mut HeaderMap,
) {
    if reported.is_empty() || style == HeaderStyle::None {
        return;
    }
    if matches!(style, HeaderStyle::Draft | HeaderStyle::Both) {
        if let Some(policy) = policy {
            out.insert(HeaderName::from_static("ratelimit-policy"), policy.clone());
        }
        let mut state = BytesMut::with_capacity(32 * reported.len());
        for r in reported {
            if let Some(d) = r.decision {
                if !state.is_empty() {
                    state.put_slice(b", ");
                }
                let t = if d.allowed {
                    ceil_secs(d.reset)
                } else {
                    ceil_secs(d.retry_after)
                };
                item(&mut state, r.name, b";r=", d.remaining, b";t=", t);
            }
        }
        if !state.is_empty()
            && let Ok(v) = HeaderValue::from_maybe_shared(state.freeze())
        {
            out.insert(HeaderName::from_static("ratelimit"), v);
        }
    }
    if matches!(style, HeaderStyle::Legacy | HeaderStyle::Both)
        && let Some((r, d)) = reported
            .iter()
            .filter_map(|r| r.decision.map(|d| (r, d)))
            .min_by_key(|(_, d)| d.remaining)
    {
        let reset = if d.allowed { d.reset } else { d.retry_after };
        out.insert(
            HeaderName::from_static("x-ratelimit-limit"),
            r.quota.rate.into(),
        );
        out.insert(
            HeaderName::from_static("x-ratelimit-remaining"),
            d.remaining.into(),
        );
        out.insert(
            HeaderName::from_static("x-ratelimit-reset"),
            ceil_secs(reset).into(),
        );
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
        let policy = HeaderValue::from_static("\"a\";q=100;w=1, \"b\";q=5000;w=60");
        let mut h = HeaderMap::new();
        write(HeaderStyle::Both, Some(&policy), &reported, &mut h);
        assert_eq!(h["ratelimit-policy"], "\"a\";q=100;w=1, \"b\";q=5000;w=60");
        assert_eq!(h["ratelimit"], "\"a\";r=7;t=2, \"b\";r=4000;t=12");
        assert_eq!(h["x-ratelimit-limit"], "100");
        assert_eq!(h["x-ratelimit-remaining"], "7");
        assert_eq!(h["x-ratelimit-reset"], "2");
        let mut h = HeaderMap::new();
        write(HeaderStyle::Draft, Some(&policy), &reported, &mut h);
        assert!(h.get("x-ratelimit-limit").is_none());
    }
}
