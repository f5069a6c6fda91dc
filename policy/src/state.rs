//! What outlives a config reload: rate-limit state, Redis connections, JWKS
//! caches and metrics.
//!
//! The gateway creates one [`PolicyState`] at start-up and passes it to every
//! [`crate::Policies::build`]. A policy whose name and numbers did not change
//! gets the very same in-memory limiter back, so a reload does not hand every
//! client a fresh burst. Entries are held weakly: once no live config uses a
//! limiter or JWKS URL, it is freed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use prometheus_client::registry::Registry;

use crate::auth::RemoteJwks;
use crate::metrics::Metrics;
use crate::ratelimit::gcra::Quota;
use crate::ratelimit::local::LocalLimiter;
use crate::ratelimit::redis::RedisBackend;

type JwksKey = (String, Duration, Duration, Duration);

/// Long-lived policy state; cheap to clone.
#[derive(Clone)]
pub struct PolicyState {
    inner: Arc<Inner>,
}

struct Inner {
    metrics: Metrics,
    local: Mutex<HashMap<(String, Quota, usize), Weak<LocalLimiter>>>,
    redis: Mutex<HashMap<(String, Duration), RedisBackend>>,
    jwks: Mutex<HashMap<JwksKey, Weak<RemoteJwks>>>,
}

impl Default for PolicyState {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PolicyState {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                metrics: Metrics::new(),
                local: Mutex::default(),
                redis: Mutex::default(),
                jwks: Mutex::default(),
            }),
        }
    }

    /// Registers `weir_auth_failures_total`, `weir_ratelimit_decisions_total`
    /// and `weir_ratelimit_backend_errors_total`. Call once.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.inner.metrics.register(registry);
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The limiter for `name` with this quota: the existing one if a live
    /// config already uses the same, else a new one.
    pub(crate) fn local_limiter(
        &self,
        name: &str,
        quota: Quota,
        max_keys: usize,
    ) -> Arc<LocalLimiter> {
        let mut map = lock(&self.inner.local);
        let key = (name.to_owned(), quota, max_keys);
        if let Some(l) = map.get(&key).and_then(Weak::upgrade) {
            return l;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(LocalLimiter::new(quota, max_keys));
        map.insert(key, Arc::downgrade(&l));
        l
    }

    /// One connection manager per Redis URL. Must run inside tokio.
    pub(crate) fn redis(&self, url: &str, timeout: Duration) -> Result<RedisBackend, String> {
        let mut map = lock(&self.inner.redis);
        let key = (url.to_owned(), timeout);
        if let Some(r) = map.get(&key) {
            return Ok(r.clone());
        }
        let r = RedisBackend::new(url, timeout)?;
        map.insert(key, r.clone());
        Ok(r)
    }

    /// The shared cache for a JWKS URL, its background refresh started on
    /// first use. Must run inside tokio.
    pub(crate) fn remote_jwks(
        &self,
        url: &str,
        target: crate::auth::fetch::Target,
        refresh: Duration,
        floor: Duration,
        timeout: Duration,
    ) -> Arc<RemoteJwks> {
        let mut map = lock(&self.inner.jwks);
        let key = (url.to_owned(), refresh, floor, timeout);
        if let Some(j) = map.get(&key).and_then(Weak::upgrade) {
            return j;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let j = RemoteJwks::new(url.to_owned(), target, refresh, floor, timeout);
        j.spawn_refresher();
        map.insert(key, Arc::downgrade(&j));
        j
    }
}
