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

/// Decides one request against all of a route's limits: every limit is
/// checked and the request is recorded only if all of them admit it (check
/// all, then commit). Locally that is one multi-shard critical section
/// ([`local::check_all`]); with Redis, one atomic script over every key. When
/// Redis fails, the configured failure mode applies to the request as a
/// whole (`local` falls back to the replica's own limiters, again all or
/// nothing).
///
/// Every policy of one config generation has the same backend (the
/// `rate_limits.backend` setting), so the limits of a route are all local or
/// all Redis.
pub(crate) async fn check_all(
    limits: &[Arc<LimitPolicy>],
    input: &KeyInput<'_>,
    failures: &FailureLog,
) -> Vec<Outcome> {
    let keys: Vec<String> = limits
        .iter()
        .map(|p| key::build(&p.name, &p.spec.key, input))
        .collect();
    let mut redis_entries = Vec::new();
    let mut shared = None;
    for (p, k) in limits.iter().zip(&keys) {
        if let Backend::Redis {
            redis,
            on_error,
            prefix,
            ..
        } = &p.backend
        {
            redis_entries.push((format!("{prefix}{k}"), &p.spec.quota));
            shared.get_or_insert((redis, *on_error));
        }
    }
    let Some((redis, on_error)) = shared else {
        let entries: Vec<(&LocalLimiter, &str)> = limits
            .iter()
            .zip(&keys)
            .filter_map(|(p, k)| match &p.backend {
                Backend::Local(l) => Some((&**l, k.as_str())),
                Backend::Redis { .. } => None,
            })
            .collect();
        return local::check_all(&entries)
            .into_iter()
            .map(Outcome::Decided)
            .collect();
    };
    match redis.check_all(&redis_entries).await {
        Ok(decisions) => decisions.into_iter().map(Outcome::Decided).collect(),
        Err(e) => {
            for p in limits {
                failures.record(&p.name, &e);
            }
            match on_error {
                OnError::Open => vec![Outcome::FailedOpen; limits.len()],
                OnError::Closed => vec![Outcome::FailedClosed; limits.len()],
                OnError::Local => {
                    let entries: Vec<(&LocalLimiter, &str)> = limits
                        .iter()
                        .zip(&keys)
                        .map(|(p, k)| match &p.backend {
                            Backend::Local(l) | Backend::Redis { fallback: l, .. } => {
                                (&**l, k.as_str())
                            }
                        })
                        .collect();
                    local::check_all(&entries)
                        .into_iter()
                        .map(Outcome::Fallback)
                        .collect()
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
