//! One endpoint's outlier state machine.
//!
//! ```text
//!            N consecutive failures, or success rate < threshold
//!   Closed ───────────────────────────────────────────────▶ Open (ejected for
//!     ▲                                                      base × ejections, ≤ max)
//!     │ probe succeeds                                         │ ejection time over
//!     └──────────────── HalfOpen (one probe admitted) ◀────────┘
//!                          │ probe fails: Open again, longer
//! ```
//!
//! The hot path (admission, recording a success) is atomics only; the detector's
//! mutex is taken only on a transition, which is what keeps the "never eject more
//! than `max_percent`" count exact.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::{BreakerState, Shared};
use crate::resilience::window::SlidingCounter;

/// Buckets of the success-rate window.
const BUCKETS: usize = 10;

/// What the breaker lets through for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The endpoint is healthy.
    Allow,
    /// The endpoint is half-open and this call is its one probe.
    Probe,
    /// The endpoint is ejected (or its probe is already in flight).
    Reject,
}

/// The health of one endpoint, shared by its [`Breaker`](super::Breaker) and
/// the balancer that filters on [`is_available`](Self::is_available).
pub struct EndpointHealth {
    addr: SocketAddr,
    shared: Arc<Shared>,
    consecutive: AtomicU32,
    requests: Option<SlidingCounter>,
    failures: Option<SlidingCounter>,
    /// Nanoseconds since the detector's origin until which the endpoint is
    /// ejected, plus one; 0 while closed.
    ejected_until: AtomicU64,
    probing: AtomicBool,
    ejections: AtomicU32,
    last_closed: AtomicU64,
}

/// A point-in-time view of one endpoint, for `/state` and `/config`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointSnapshot {
    /// The endpoint.
    pub address: SocketAddr,
    /// `closed`, `open` or `half_open`.
    pub state: BreakerState,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Ejections so far (drives the ejection time).
    pub ejections: u32,
    /// Milliseconds of ejection left (0 unless open).
    pub ejected_for_ms: u64,
    /// Success rate over the window, when one is configured and it saw requests.
    pub success_rate: Option<f64>,
}

impl EndpointHealth {
    pub(super) fn new(addr: SocketAddr, shared: Arc<Shared>) -> Self {
        let window = |w: Duration| SlidingCounter::new(w, BUCKETS, shared.origin);
        let sr = shared.settings.success_rate;
        EndpointHealth {
            addr,
            requests: sr.map(|s| window(s.window)),
            failures: sr.map(|s| window(s.window)),
            shared,
            consecutive: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            ejections: AtomicU32::new(0),
            last_closed: AtomicU64::new(0),
        }
    }

    /// The endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn now_nanos(&self) -> u64 {
        let d = Instant::now().saturating_duration_since(self.shared.origin);
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        match self.ejected_until.load(Ordering::Acquire) {
            0 => BreakerState::Closed,
            until if self.now_nanos() < until - 1 => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// Whether a balancer should consider this endpoint: closed, or half-open
    /// with no probe in flight. Claims nothing.
    pub fn is_available(&self) -> bool {
        match self.state() {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => !self.probing.load(Ordering::Acquire),
        }
    }

    /// Decides whether a call may go to this endpoint, claiming the probe slot
    /// when half-open.
    pub fn admit(&self) -> Admission {
        match self.state() {
            BreakerState::Closed => Admission::Allow,
            BreakerState::Open => Admission::Reject,
            BreakerState::HalfOpen => {
                if self
                    .probing
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.shared
                        .notify(self.addr, BreakerState::Open, BreakerState::HalfOpen);
                    Admission::Probe
                } else {
                    Admission::Reject
                }
            }
        }
    }

    /// Forgets a call that ended without an outcome (its caller went away):
    /// it says nothing about the endpoint, but a probe slot must be freed.
    pub fn abandon(&self, admission: Admission) {
        if let Admission::Probe = admission {
            self.probing.store(false, Ordering::Release);
        }
    }

    /// Records the outcome of a call that did not go through [`admit`](Self::admit)
    /// (passive detection: the gateway reports refused connections and
    /// successes). While ejected, outcomes change nothing; once the ejection
    /// is over, traffic flows again and the next outcome decides: a success
    /// restores the endpoint, a failure ejects it again for longer.
    pub fn observe(&self, success: bool) {
        match self.state() {
            BreakerState::Closed => self.record_closed(success),
            BreakerState::Open => {}
            BreakerState::HalfOpen if success => self.close(),
            BreakerState::HalfOpen => {
                let _g = self
                    .shared
                    .transitions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                // Another failure may have ejected it again meanwhile.
                if self.state() == BreakerState::HalfOpen {
                    self.open(BreakerState::HalfOpen);
                }
            }
        }
    }

    /// How long the endpoint stays ejected from now (zero unless open).
    pub fn ejected_for(&self) -> Duration {
        let until = self.ejected_until.load(Ordering::Acquire);
        Duration::from_nanos(until.saturating_sub(1).saturating_sub(self.now_nanos()))
    }

    /// Ends an ejection early (an active health check saw the endpoint recover).
    pub fn restore(&self) {
        self.close();
    }

    /// Records the outcome of a call admitted with `admission`.
    pub fn record(&self, admission: Admission, success: bool) {
        match admission {
            Admission::Reject => {}
            Admission::Probe => {
                if success {
                    self.close();
                } else {
                    let _g = self
                        .shared
                        .transitions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    self.open(BreakerState::HalfOpen);
                }
                self.probing.store(false, Ordering::Release);
            }
            Admission::Allow => self.record_closed(success),
        }
    }

    fn record_closed(&self, success: bool) {
        if self.ejected_until.load(Ordering::Acquire) != 0 {
            // A call that started before the ejection: it changes nothing now.
            return;
        }
        let now = Instant::now();
        if let Some(r) = &self.requests {
            r.add(now, 1);
        }
        if success {
            if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            return;
        }
        if let Some(f) = &self.failures {
            f.add(now, 1);
        }
        let consecutive = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
        let settings = &self.shared.settings;
        let by_consecutive = settings
            .consecutive_failures
            .is_some_and(|n| consecutive >= n);
        let by_rate = || {
            let (Some(sr), Some(r), Some(f)) =
                (settings.success_rate, &self.requests, &self.failures)
            else {
                return false;
            };
            let total = r.sum(now);
            total >= u64::from(sr.min_requests)
                && (total - f.sum(now).min(total)) as f64 / (total as f64) < sr.threshold
        };
        if by_consecutive || by_rate() {
            self.try_eject();
        }
    }

    fn try_eject(&self) {
        let _g = self
            .shared
            .transitions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.ejected_until.load(Ordering::Acquire) != 0 {
            return;
        }
        if !self.shared.may_eject_another() {
            tracing::debug!(endpoint = %self.addr, "not ejected: max_percent reached");
            return;
        }
        let now = self.now_nanos();
        let max = self.shared.settings.ejection_max;
        let since_closed = now.saturating_sub(self.last_closed.load(Ordering::Relaxed));
        if u128::from(since_closed) >= max.as_nanos() {
            // Healthy for a full max period: start over from the base time.
            self.ejections.store(0, Ordering::Relaxed);
        }
        self.shared.ejected.fetch_add(1, Ordering::AcqRel);
        self.open(BreakerState::Closed);
    }

    /// Ejects (again); the caller holds the transition lock.
    fn open(&self, from: BreakerState) {
        let n = self.ejections.fetch_add(1, Ordering::AcqRel) + 1;
        let s = &self.shared.settings;
        let time = s.backoff.ejection_time(n, s.ejection_base, s.ejection_max);
        let until = self
            .now_nanos()
            .saturating_add(u64::try_from(time.as_nanos()).unwrap_or(u64::MAX))
            .saturating_add(1);
        self.ejected_until.store(until, Ordering::Release);
        tracing::info!(endpoint = %self.addr, ejections = n, for_ms = time.as_millis() as u64, "endpoint ejected");
        self.shared.notify(self.addr, from, BreakerState::Open);
    }

    fn close(&self) {
        let _g = self
            .shared
            .transitions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.ejected_until.swap(0, Ordering::AcqRel) == 0 {
            return;
        }
        self.consecutive.store(0, Ordering::Relaxed);
        if let (Some(r), Some(f)) = (&self.requests, &self.failures) {
            r.clear();
            f.clear();
        }
        self.last_closed.store(self.now_nanos(), Ordering::Relaxed);
        self.shared.ejected.fetch_sub(1, Ordering::AcqRel);
        tracing::info!(endpoint = %self.addr, "endpoint restored");
        self.shared
            .notify(self.addr, BreakerState::HalfOpen, BreakerState::Closed);
    }

    /// Forgets this endpoint's ejection (it left the endpoint set).
    pub(super) fn retire(&self) {
        let _g = self
            .shared
            .transitions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.ejected_until.swap(0, Ordering::AcqRel) != 0 {
            self.shared.ejected.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// A view for `/state`.
    pub fn snapshot(&self) -> EndpointSnapshot {
        let now = Instant::now();
        let success_rate = match (&self.requests, &self.failures) {
            (Some(r), Some(f)) => {
                let total = r.sum(now);
                (total > 0).then(|| (total - f.sum(now).min(total)) as f64 / total as f64)
            }
            _ => None,
        };
        EndpointSnapshot {
            address: self.addr,
            state: self.state(),
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            ejections: self.ejections.load(Ordering::Relaxed),
            ejected_for_ms: u64::try_from(self.ejected_for().as_millis()).unwrap_or(u64::MAX),
            success_rate,
        }
    }
}

impl std::fmt::Debug for EndpointHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointHealth")
            .field("addr", &self.addr)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}
