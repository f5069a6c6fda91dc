//! The failed-authentication throttle: a GCRA per client address that only
//! failed authentications spend, consulted before any credential is checked.
//!
//! A client whose failures are over the limit gets 429 for every request
//! that would go through a credential check, valid credential or not, until
//! its bucket refills: a guesser cannot tell a right guess from a wrong one
//! while throttled, so guessing runs at `rate`, and a flood of bad keys or
//! tokens is refused without hashing a key or verifying a signature. The
//! state is this replica's own (a local limiter with its key cap), which
//! keeps the throttle working when a shared backend is down.
//!
//! IPv6 clients are keyed by their /64: one host commonly owns a whole /64,
//! and keying single addresses would let it rotate past the throttle.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AuthFailureLimitConfig, ConfigErrors};
use crate::ratelimit::gcra::Quota;
use crate::ratelimit::local::LocalLimiter;
use crate::state::PolicyState;

/// Name of the throttle in 429 answers and rate-limit logs. `#` cannot
/// appear in a policy name, so its state is never shared with a policy's.
const STATE_NAME: &str = "#auth-failures";

/// The throttle of one config generation; its state outlives reloads that
/// keep the same numbers.
pub(crate) struct AuthFailureLimit {
    pub(crate) name: Arc<str>,
    limiter: Arc<LocalLimiter>,
}

/// Validates `auth.failure_limit`; `None` when it is off or invalid.
pub(crate) fn compile(cfg: &AuthFailureLimitConfig, errs: &mut ConfigErrors) -> Option<Quota> {
    if !cfg.enabled {
        return None;
    }
    if cfg.max_keys == 0 {
        errs.push("auth.failure_limit.max_keys", "must be at least 1");
    }
    let quota = Quota::new(cfg.rate, cfg.per.get(), cfg.burst);
    if quota.is_none() {
        errs.push(
            "auth.failure_limit",
            "rate, per and burst must all be above zero (or set enabled: false)",
        );
    }
    quota
}

impl AuthFailureLimit {
    pub(crate) fn new(state: &PolicyState, quota: Quota, max_keys: usize) -> Self {
        Self {
            name: "auth-failures".into(),
            limiter: state.local_limiter(STATE_NAME, quota, max_keys.max(1)),
        }
    }

    /// Whether `client` may have its credentials checked now; `Err` carries
    /// how long until it may. Spends nothing.
    pub(crate) fn admits(&self, client: IpAddr) -> Result<(), Duration> {
        let d = self.limiter.peek(&key(client));
        if d.allowed {
            Ok(())
        } else {
            Err(d.retry_after)
        }
    }

    /// Records one failed authentication of `client`.
    pub(crate) fn record_failure(&self, client: IpAddr) {
        self.limiter.check(&key(client));
    }

    #[cfg(test)]
    pub(crate) fn limiter(&self) -> &LocalLimiter {
        &self.limiter
    }
}

fn key(client: IpAddr) -> String {
    match client.to_canonical() {
        IpAddr::V4(v4) => {
            let mut key = String::with_capacity(15);
            crate::ip_text::push_ip(&mut key, IpAddr::V4(v4));
            key
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(key(a), key(b));
        assert_ne!(key(a), key(c));
        assert_eq!(key("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
    }

    #[tokio::test]
    async fn a_flood_of_addresses_stays_bounded() {
        let mut errs = ConfigErrors::new();
        let cfg = AuthFailureLimitConfig {
            max_keys: 1000,
            ..Default::default()
        };
        let quota = compile(&cfg, &mut errs).unwrap();
        let t = AuthFailureLimit::new(&PolicyState::new(), quota, cfg.max_keys);
        for i in 0..50_000u32 {
            t.record_failure(IpAddr::V4(i.into()));
        }
        let held = t.limiter().len();
        assert!(held <= t.limiter().capacity(), "{held}");
        assert!(
            t.limiter().capacity() < 2 * 1000 + 16 * 256,
            "cap near max_keys"
        );
    }
}
