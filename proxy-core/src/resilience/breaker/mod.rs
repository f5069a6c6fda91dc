//! Endpoint ejection (circuit breaking as per-endpoint outlier detection): the
//! one mechanism both proxies use to take a failing endpoint out of rotation.
//!
//! An [`OutlierDetector`] belongs to one endpoint set (an `EndpointGroup`:
//! a sidecar destination or a gateway upstream) and holds an
//! [`EndpointHealth`] per endpoint. An endpoint is ejected after
//! `consecutive_failures` failures in a row or when its success rate over a
//! window with at least `min_requests` falls below `threshold`. It stays out
//! for a time that grows with each ejection ([`EjectionBackoff`], capped at `max`). At
//! most `max_percent` of the endpoints are ejected at once (but always at least
//! one may be, as in Envoy, so a single-endpoint destination can still open).
//!
//! Outcomes reach an endpoint's [`EndpointHealth`] one of two ways:
//!
//! - guarded, through [`Breaker`] (the sidecar): every response is judged (5xx,
//!   connection errors, gRPC `UNAVAILABLE`/`INTERNAL`/`DEADLINE_EXCEEDED`), and
//!   once the ejection is over exactly one half-open probe is let through;
//! - passive, through [`EndpointHealth::observe`] (the gateway, which reports
//!   refused connections): once the ejection is over traffic resumes and the
//!   next outcome decides.
//!
//! Balancers skip endpoints that are not [`available`](EndpointHealth::is_available)
//! (`balance::Endpoint::is_available` includes it); when none is, the sidecar
//! fails fast with [`CircuitOpen`] (a 503) instead of waiting on timeouts.

mod endpoint;
mod service;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

pub use endpoint::{Admission, EndpointHealth, EndpointSnapshot};
pub use service::{Breaker, BreakerLayer, ObservedBody, ResponseFuture};

/// The state of one endpoint's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Taking traffic.
    Closed,
    /// Ejected.
    Open,
    /// Ejection over; one probe decides.
    HalfOpen,
}

impl BreakerState {
    /// The label used in metrics and `/state`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Success-rate ejection settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuccessRate {
    /// Eject when the success rate is below this (0.0–1.0).
    pub threshold: f64,
    /// Over this window.
    pub window: Duration,
    /// Only once the window holds at least this many requests.
    pub min_requests: u32,
}

/// How an ejection's length grows with the number of ejections `n` in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EjectionBackoff {
    /// `n × base` (the sidecar's `circuit_breaker.ejection`).
    #[default]
    Linear,
    /// `base × 2^(n-1)` (the gateway's `passive_ejection`).
    Doubling,
}

impl EjectionBackoff {
    /// The length of the `n`-th ejection (`n ≥ 1`), capped at `max`.
    pub fn ejection_time(self, n: u32, base: Duration, max: Duration) -> Duration {
        let factor = match self {
            EjectionBackoff::Linear => n.max(1),
            EjectionBackoff::Doubling => 1u32 << n.saturating_sub(1).min(16),
        };
        base.saturating_mul(factor).min(max)
    }
}

/// The ejection settings of one endpoint set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Eject after this many failures in a row (`None`: never by count).
    pub consecutive_failures: Option<u32>,
    /// Eject on a low success rate (`None`: never by rate).
    pub success_rate: Option<SuccessRate>,
    /// First ejection time; later ones grow by `backoff`.
    pub ejection_base: Duration,
    /// How ejection times grow.
    pub backoff: EjectionBackoff,
    /// Longest ejection.
    pub ejection_max: Duration,
    /// Most endpoints ejected at once, in percent (at least one is always allowed
    /// unless this is 0).
    pub max_percent: u8,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            consecutive_failures: Some(5),
            success_rate: None,
            ejection_base: Duration::from_secs(1),
            backoff: EjectionBackoff::Linear,
            ejection_max: Duration::from_secs(60),
            max_percent: 50,
        }
    }
}

impl BreakerSettings {
    /// Passive ejection: one reported failure ejects the endpoint for `base`,
    /// doubling on each repeat up to `max`; no cap on how many are out at once
    /// (a balancer that finds none available falls back on its own rule).
    pub fn passive(base: Duration, max: Duration) -> Self {
        BreakerSettings {
            consecutive_failures: Some(1),
            success_rate: None,
            ejection_base: base,
            backoff: EjectionBackoff::Doubling,
            ejection_max: max,
            max_percent: 100,
        }
    }
}

/// The service error when every endpoint of a destination is ejected. Maps to
/// `503` with the problem type `https://weir.dev/problems/circuit-open`.
#[derive(Debug, Clone, Default, thiserror::Error)]
#[error("circuit open: every endpoint of the destination is ejected")]
pub struct CircuitOpen {
    _priv: (),
}

impl CircuitOpen {
    /// The error.
    pub fn new() -> Self {
        CircuitOpen { _priv: () }
    }
}

/// Observer of breaker transitions: `(endpoint, from, to)`.
pub type BreakerHook = Arc<dyn Fn(SocketAddr, BreakerState, BreakerState) + Send + Sync>;

/// What every endpoint of one detector shares.
pub(crate) struct Shared {
    settings: BreakerSettings,
    origin: Instant,
    ejected: AtomicUsize,
    total: AtomicUsize,
    transitions: Mutex<()>,
    hook: Option<BreakerHook>,
}

impl Shared {
    fn may_eject_another(&self) -> bool {
        let pct = usize::from(self.settings.max_percent.min(100));
        if pct == 0 {
            return false;
        }
        let total = self.total.load(Ordering::Acquire);
        let max = (total * pct / 100).max(1);
        self.ejected.load(Ordering::Acquire) < max
    }

    fn notify(&self, addr: SocketAddr, from: BreakerState, to: BreakerState) {
        if let Some(h) = &self.hook {
            h(addr, from, to);
        }
    }
}

/// The outlier detector of one destination.
pub struct OutlierDetector {
    shared: Arc<Shared>,
    /// Read lock-free on every call; written under `shared.transitions`.
    endpoints: ArcSwap<Vec<Arc<EndpointHealth>>>,
}

impl std::fmt::Debug for OutlierDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutlierDetector")
            .field("settings", &self.shared.settings)
            .field("ejected", &self.ejected())
            .finish_non_exhaustive()
    }
}

impl OutlierDetector {
    /// A detector with no endpoints yet.
    pub fn new(settings: BreakerSettings) -> Self {
        Self::build(settings, None)
    }

    /// A detector that reports every transition to `hook` (metrics).
    pub fn with_hook(settings: BreakerSettings, hook: BreakerHook) -> Self {
        Self::build(settings, Some(hook))
    }

    fn build(settings: BreakerSettings, hook: Option<BreakerHook>) -> Self {
        OutlierDetector {
            shared: Arc::new(Shared {
                settings,
                origin: Instant::now(),
                ejected: AtomicUsize::new(0),
                total: AtomicUsize::new(0),
                transitions: Mutex::new(()),
                hook,
            }),
            endpoints: ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &BreakerSettings {
        &self.shared.settings
    }

    /// The health of `addr`, added to the detector if new.
    pub fn endpoint(&self, addr: SocketAddr) -> Arc<EndpointHealth> {
        if let Some(h) = self.get(addr) {
            return h;
        }
        let _g = self
            .shared
            .transitions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let current = self.endpoints.load_full();
        if let Some(h) = current.iter().find(|h| h.addr() == addr) {
            return h.clone();
        }
        let h = Arc::new(EndpointHealth::new(addr, self.shared.clone()));
        let mut next = Vec::with_capacity(current.len() + 1);
        next.extend(current.iter().cloned());
        next.push(h.clone());
        self.shared.total.store(next.len(), Ordering::Release);
        self.endpoints.store(Arc::new(next));
        h
    }

    /// The health of `addr`, if it is known (lock-free).
    pub fn get(&self, addr: SocketAddr) -> Option<Arc<EndpointHealth>> {
        self.endpoints
            .load()
            .iter()
            .find(|h| h.addr() == addr)
            .cloned()
    }

    /// Whether `addr` may take a call: unknown endpoints are (they have no
    /// history yet). Lock-free, for a balancer's filter.
    pub fn is_available(&self, addr: SocketAddr) -> bool {
        self.endpoints
            .load()
            .iter()
            .find(|h| h.addr() == addr)
            .is_none_or(|h| h.is_available())
    }

    /// Keeps exactly `addrs` (after a discovery update): new ones are added,
    /// gone ones retired (their ejection no longer counts against `max_percent`).
    pub fn sync(&self, addrs: &[SocketAddr]) -> Vec<Arc<EndpointHealth>> {
        let retired: Vec<Arc<EndpointHealth>>;
        {
            let _g = self
                .shared
                .transitions
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let current = self.endpoints.load_full();
            let (keep, gone): (Vec<_>, Vec<_>) = current
                .iter()
                .cloned()
                .partition(|h| addrs.contains(&h.addr()));
            let mut next = keep;
            for a in addrs {
                if !next.iter().any(|h| h.addr() == *a) {
                    next.push(Arc::new(EndpointHealth::new(*a, self.shared.clone())));
                }
            }
            self.shared.total.store(next.len(), Ordering::Release);
            self.endpoints.store(Arc::new(next));
            retired = gone;
        }
        for h in &retired {
            h.retire();
        }
        let eps = self.endpoints.load();
        addrs
            .iter()
            .filter_map(|a| eps.iter().find(|h| h.addr() == *a).cloned())
            .collect()
    }

    /// Endpoints ejected now (open or half-open).
    pub fn ejected(&self) -> usize {
        self.shared.ejected.load(Ordering::Acquire)
    }

    /// True when no endpoint can take a call.
    pub fn all_unavailable(&self) -> bool {
        let eps = self.endpoints.load();
        !eps.is_empty() && !eps.iter().any(|h| h.is_available())
    }

    /// Every endpoint's state, for `/state`.
    pub fn snapshot(&self) -> Vec<EndpointSnapshot> {
        self.endpoints.load().iter().map(|h| h.snapshot()).collect()
    }
}

#[cfg(test)]
mod tests;
