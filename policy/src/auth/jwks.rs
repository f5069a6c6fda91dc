//! JWK sets fetched from a URL: cached, refreshed in the background, and
//! refreshed early when a token names a `kid` we do not know yet (key
//! rotation), with a floor between fetches so tokens with made-up key ids
//! cannot turn the gateway into a flood against the JWKS host.

use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use super::fetch::Target;
use super::keys::KeySet;

/// One remote JWK set, shared by every provider (and every config generation)
/// that names the same URL.
pub(crate) struct RemoteJwks {
    /// The URL as logs may show it: without credentials or query.
    url: String,
    target: Target,
    current: ArcSwap<KeySet>,
    /// When the last fetch started; `None` before the first.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    pub(crate) refresh: Duration,
    pub(crate) min_interval: Duration,
    pub(crate) timeout: Duration,
}

impl RemoteJwks {
    pub(crate) fn new(
        url: String,
        target: Target,
        refresh: Duration,
        min_interval: Duration,
        timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            url: proxy_core::config::SecretUrl::new(url).to_string(),
            target,
            current: ArcSwap::from_pointee(KeySet::default()),
            last_attempt: tokio::sync::Mutex::new(None),
            refresh,
            min_interval,
            timeout,
        })
    }

    /// The keys as of the last successful fetch (lock-free).
    pub(crate) fn keys(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// Fetches now unless the last fetch began less than `min_interval` ago.
    /// Concurrent callers wait for the one fetch in flight instead of starting
    /// their own. Returns whether the key set was replaced.
    pub(crate) async fn refresh_if_due(&self) -> bool {
        let mut last = self.last_attempt.lock().await;
        if let Some(t) = *last
            && t.elapsed() < self.min_interval
        {
            return false;
        }
        *last = Some(Instant::now());
        self.fetch_and_store().await
    }

    async fn fetch_and_store(&self) -> bool {
        let body = match self.target.get(self.timeout).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping the previous keys");
                return false;
            }
        };
        let parsed = serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                let mut skipped = Vec::new();
                let set = KeySet::from_jwks_json(&v, &mut skipped)?;
                if !skipped.is_empty() {
                    tracing::debug!(url = %self.url, ?skipped, "JWKS keys skipped");
                }
                Ok(set)
            });
        match parsed {
            Ok(set) => {
                tracing::debug!(url = %self.url, keys = set.keys.len(), "JWKS loaded");
                self.current.store(Arc::new(set));
                true
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS document invalid; keeping the previous keys");
                false
            }
        }
    }

    /// Starts the background refresher. It holds only a weak reference, so it
    /// ends by itself once no configuration uses this URL any more.
    pub(crate) fn spawn_refresher(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(this) = weak.upgrade() else { return };
                let ok = this.refresh_if_due().await;
                // After a failure, try again as soon as the floor allows.
                let wait = if ok {
                    this.refresh
                } else {
                    this.min_interval
                        .max(Duration::from_millis(100))
                        .min(this.refresh)
                };
                drop(this);
                tokio::time::sleep(wait).await;
            }
        });
    }
}
