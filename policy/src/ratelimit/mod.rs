//! Rate limiting: named GCRA policies, checked locally or in Redis.
//!
//! Layout: `gcra.rs` (the math), `local.rs` (sharded in-memory store),
//! `redis.rs` (atomic script), `key.rs` (what separates callers; client IP),
//! `headers.rs` (response headers), this file (policies and failure modes).

pub mod gcra;
pub(crate) mod headers;
pub(crate) mod key;
pub mod local;
pub(crate) mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gcra::{Decision, Quota};
use key::{Cidr, KeyInput, KeyPart};
use local::LocalLimiter;

use crate::config::{ConfigErrors, HeaderStyle, OnError, RateLimitBackend, RateLimitsConfig};

/// A validated policy, not yet bound to a backend.
#[derive(Clone, Debug)]
pub(crate) struct PolicySpec {
    pub(crate) quota: Quota,
    /// Includes `route` when the policy is declared `per_route`.
    pub(crate) key: Vec<KeyPart>,
}

#[derive(Clone, Debug)]
pub(crate) struct RedisSettings {
    pub(crate) url: proxy_core::config::SecretUrl,
    pub(crate) timeout: Duration,
    pub(crate) on_error: OnError,
    pub(crate) replicas: u32,
    pub(crate) prefix: String,
}

/// `rate_limits:`, validated.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) redis: Option<RedisSettings>,
    pub(crate) policies: BTreeMap<String, PolicySpec>,
    pub(crate) trusted: Vec<Cidr>,
    pub(crate) headers: HeaderStyle,
    pub(crate) default: Vec<String>,
    pub(crate) max_keys: usize,
}

pub(crate) fn compile(cfg: &RateLimitsConfig, errs: &mut ConfigErrors) -> Settings {
    let redis = match (cfg.backend, &cfg.redis) {
        (RateLimitBackend::Redis, None) => {
            errs.push(
                "rate_limits.redis",
                "backend redis needs a redis: { url: … } block",
            );
            None
        }
        (RateLimitBackend::Redis, Some(r)) => {
            if let Err(e) = ::redis::Client::open(r.url.expose()) {
                errs.push("rate_limits.redis.url", e.to_string());
            }
            if r.replicas == 0 {
                errs.push("rate_limits.redis.replicas", "must be at least 1");
            }
            if r.timeout.get().is_zero() {
                errs.push("rate_limits.redis.timeout", "must be more than 0s");
            }
            Some(RedisSettings {
                url: r.url.clone(),
                timeout: r.timeout.get(),
                on_error: r.on_error,
                replicas: r.replicas.max(1),
                prefix: r.key_prefix.clone(),
            })
        }
        (RateLimitBackend::Local, _) => None,
    };
    if cfg.local.max_keys == 0 {
        errs.push("rate_limits.local.max_keys", "must be at least 1");
    }
    let mut policies = BTreeMap::new();
    for (name, p) in &cfg.policies {
        let at = format!("rate_limits.policies.{name}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            errs.push(
                at.clone(),
                "policy names use letters, digits and - _ . : only",
            );
        }
        let burst = p.burst.unwrap_or(p.rate);
        let Some(quota) = Quota::new(p.rate, p.per.get(), burst) else {
            errs.push(at, "rate, per and burst must all be above zero (and burst * per / rate below 100 years)");
            continue;
        };
        let mut key = Vec::new();
        for (i, k) in p.key.iter().enumerate() {
            match KeyPart::parse(k) {
                Ok(part) => key.push(part),
                Err(e) => errs.push(format!("{at}.key[{i}]"), e),
            }
        }
        if p.per_route && !key.contains(&KeyPart::Route) {
            key.insert(0, KeyPart::Route);
        }
        policies.insert(name.clone(), PolicySpec { quota, key });
    }
    let mut trusted = Vec::new();
    for (i, c) in cfg.trusted_proxies.iter().enumerate() {
        match Cidr::parse(c) {
            Ok(c) => trusted.push(c),
            Err(e) => errs.push(format!("rate_limits.trusted_proxies[{i}]"), e),
        }
    }
    for (i, name) in cfg.default.iter().enumerate() {
        if !policies.contains_key(name) && !cfg.policies.contains_key(name) {
            errs.push(
                format!("rate_limits.default[{i}]"),
                format!("no policy named {name}"),
            );
        }
    }
    Settings {
        redis,
        policies,
        trusted,
        headers: cfg.headers,
        default: cfg.default.clone(),
        max_keys: cfg.local.max_keys.max(1),
    }
}

/// Where one policy's state lives.
pub(crate) enum Backend {
    Local(Arc<LocalLimiter>),
    Redis {
        redis: redis::RedisBackend,
        on_error: OnError,
        /// This replica's share of the limit, for `on_error: local`.
        fallback: Arc<LocalLimiter>,
        prefix: String,
    },
}

/// One named limit, bound to its backend.
pub(crate) struct LimitPolicy {
    pub(crate) name: Arc<str>,
    pub(crate) spec: PolicySpec,
    pub(crate) backend: Backend,
}

/// What a policy said about one request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
    Decided(Decision),
    /// Redis failed; `on_error: open` admitted the request.
    FailedOpen,
    /// Redis failed; `on_error: closed` rejects it.
    FailedClosed,
    /// Redis failed; the local share decided.
    Fallback(Decision),
}

impl Outcome {
    /// Index into [`crate::metrics::RESULTS`].
    pub(crate) fn result_index(&self) -> usize {
        match self {
            Outcome::Decided(d) if d.allowed => 0,
            Outcome::Decided(_) => 1,
            Outcome::FailedOpen => 2,
            Outcome::FailedClosed => 3,
            Outcome::Fallback(d) if d.allowed => 4,
            Outcome::Fallback(_) => 5,
        }
    }

    pub(crate) fn decision(&self) -> Option<Decision> {
        match self {
            Outcome::Decided(d) | Outcome::Fallback(d) => Some(*d),
            _ => None,
        }
    }
}

impl LimitPolicy {
    pub(crate) async fn check(&self, input: &KeyInput<'_>, failures: &FailureLog) -> Outcome {
        let key = key::build(&self.name, &self.spec.key, input);
        match &self.backend {
            Backend::Local(l) => Outcome::Decided(l.check(&key)),
            Backend::Redis {
                redis,
                on_error,
                fallback,
                prefix,
            } => {
                let full = format!("{prefix}{key}");
                match redis.check(&full, &self.spec.quota).await {
                    Ok(d) => Outcome::Decided(d),
                    Err(e) => {
                        failures.record(&self.name, &e);
                        match on_error {
                            OnError::Open => Outcome::FailedOpen,
                            OnError::Closed => Outcome::FailedClosed,
                            OnError::Local => Outcome::Fallback(fallback.check(&key)),
                        }
                    }
                }
            }
        }
    }
}

/// Counts backend failures and logs them without flooding: the first one,
/// then at most one line a second with the number seen meanwhile.
pub(crate) struct FailureLog {
    pub(crate) counter: prometheus_client::metrics::family::Family<
        [(&'static str, String); 1],
        prometheus_client::metrics::counter::Counter,
    >,
    last: std::sync::Mutex<(Option<Instant>, u64)>,
}

impl FailureLog {
    pub(crate) fn new() -> Self {
        Self {
            counter: Default::default(),
            last: std::sync::Mutex::new((None, 0)),
        }
    }

    pub(crate) fn record(&self, policy: &str, error: &redis::RedisFailure) {
        self.counter
            .get_or_create(&[("policy", policy.to_owned())])
            .inc();
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        last.1 += 1;
        let due = last.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if due {
            tracing::warn!(policy, error = %error, failures = last.1, "rate-limit backend failed; applying on_error");
            *last = (Some(Instant::now()), 0);
        }
    }
}
