//! One upstream endpoint and the live statistics the balancers read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::resilience::{BreakerSettings, EndpointHealth, OutlierDetector};

/// Decay time of the latency average: how quickly an endpoint that got slow,
/// or recovered, is seen as such (linkerd and Finagle use ~10 s).
const EWMA_DECAY: Duration = Duration::from_secs(10);

/// Latency assumed for an endpoint with no samples yet, so new endpoints are
/// neither avoided nor flooded.
const EWMA_DEFAULT_NS: f64 = 1_000_000.0;

/// One endpoint with its load (in-flight requests), peak-EWMA latency, active
/// health and ejection state. Ejection is the one mechanism of
/// `resilience::breaker` ([`EndpointHealth`]), shared with the group's
/// `OutlierDetector`, whoever reports the outcomes (the sidecar's breaker
/// layer or the gateway's passive reports).
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `addr` as a URI authority, built once so requests do not format it.
    authority: http::uri::Authority,
    base: Instant,
    in_flight: AtomicU32,
    ewma_ns: AtomicU64,
    ewma_stamp_ms: AtomicU64,
    healthy: AtomicBool,
    ejection: Arc<EndpointHealth>,
    check_successes: AtomicU32,
    check_failures: AtomicU32,
}

impl Endpoint {
    /// An endpoint with an ejection state of its own (default settings):
    /// for tests and tools; groups use [`with_ejection`](Self::with_ejection).
    pub fn new(addr: SocketAddr) -> Arc<Self> {
        let detector = OutlierDetector::new(BreakerSettings::default());
        Self::with_ejection(addr, detector.endpoint(addr))
    }

    /// An endpoint whose ejection state is `ejection` (from its group's
    /// detector, so `max_percent` counts across the set).
    pub fn with_ejection(addr: SocketAddr, ejection: Arc<EndpointHealth>) -> Arc<Self> {
        let authority = crate::forward::endpoint_authority(addr);
        Arc::new(Self {
            addr,
            authority,
            base: Instant::now(),
            in_flight: AtomicU32::new(0),
            ewma_ns: AtomicU64::new(EWMA_DEFAULT_NS.to_bits()),
            ewma_stamp_ms: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            ejection,
            check_successes: AtomicU32::new(0),
            check_failures: AtomicU32::new(0),
        })
    }

    /// The endpoint as a URI authority (`127.0.0.1:8080`, `[::1]:8080`).
    pub fn authority(&self) -> &http::uri::Authority {
        &self.authority
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Healthy by active checks and not ejected (a half-open endpoint whose
    /// probe is in flight is not available either).
    pub fn is_available(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.ejection.is_available()
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The endpoint's ejection state: a `Breaker` layer guards calls with it,
    /// passive callers [`observe`](EndpointHealth::observe) outcomes on it.
    pub fn ejection(&self) -> &Arc<EndpointHealth> {
        &self.ejection
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Reports a failure passively (a refused connection): with the group's
    /// ejection settings (`BreakerSettings::passive` for a gateway upstream)
    /// the endpoint is taken out of rotation. Returns how long it is out for
    /// (zero when it was not ejected).
    pub fn record_failure(&self) -> Duration {
        self.ejection.observe(false);
        self.ejection.ejected_for()
    }

    /// Reports a success passively: an endpoint whose ejection is over is
    /// restored.
    pub fn mark_success(&self) {
        self.ejection.observe(true);
    }

    /// Records one active health check result; returns the new health when it
    /// changed (after `healthy`/`unhealthy` consecutive results).
    pub fn record_check(&self, ok: bool, healthy_after: u32, unhealthy_after: u32) -> Option<bool> {
        if ok {
            self.check_failures.store(0, Ordering::Relaxed);
            let n = self.check_successes.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= healthy_after && !self.healthy.swap(true, Ordering::Relaxed) {
                // Back by active checks: a passive ejection ends with it.
                self.ejection.restore();
                return Some(true);
            }
        } else {
            self.check_successes.store(0, Ordering::Relaxed);
            let n = self.check_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= unhealthy_after && self.healthy.swap(false, Ordering::Relaxed) {
                return Some(false);
            }
        }
        None
    }

    /// Peak-EWMA latency in nanoseconds, decayed to now.
    pub fn latency_ns(&self) -> f64 {
        f64::from_bits(self.ewma_ns.load(Ordering::Relaxed))
    }

    /// Cost used by P2C-EWMA: latency weighted by outstanding requests.
    pub fn cost(&self) -> f64 {
        self.latency_ns() * f64::from(self.in_flight() + 1)
    }

    fn observe_latency(&self, rtt: Duration) {
        let now = self.now_ms();
        let rtt = rtt.as_nanos() as f64;
        let prev = self.latency_ns();
        let stamp = self.ewma_stamp_ms.swap(now, Ordering::Relaxed);
        let next = if rtt > prev {
            // Peak sensitivity: a slow response counts fully at once.
            rtt
        } else {
            let elapsed = now.saturating_sub(stamp) as f64;
            let w = (-elapsed / EWMA_DECAY.as_millis() as f64).exp();
            prev * w + rtt * (1.0 - w)
        };
        self.ewma_ns.store(next.to_bits(), Ordering::Relaxed);
    }

    /// Marks a request as started; the guard ends it.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            endpoint: self.clone(),
            started: Instant::now(),
        }
    }
}

/// An outstanding request on an endpoint. Dropping it ends the request without
/// a latency sample (cancelled requests say nothing about latency).
#[derive(Debug)]
pub struct InFlight {
    endpoint: Arc<Endpoint>,
    started: Instant,
}

impl InFlight {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// Ends the request, feeding its latency (to response headers) to the EWMA.
    pub fn finish(self) {
        self.endpoint.observe_latency(self.started.elapsed());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passive(addr: SocketAddr) -> Arc<Endpoint> {
        let d = OutlierDetector::new(BreakerSettings::passive(
            Duration::from_secs(1),
            Duration::from_secs(60),
        ));
        Endpoint::with_ejection(addr, d.endpoint(addr))
    }

    #[tokio::test(start_paused = true)]
    async fn passive_ejection_backs_off_and_expires() {
        let ep = passive("127.0.0.1:1".parse().unwrap());
        assert_eq!(ep.record_failure(), Duration::from_secs(1));
        assert!(!ep.is_available());
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(ep.is_available());
        assert_eq!(ep.record_failure(), Duration::from_secs(2));
        tokio::time::advance(Duration::from_millis(2001)).await;
        ep.mark_success();
        assert!(ep.is_available());
        assert_eq!(ep.ejection().ejected_for(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn recovery_by_health_checks_ends_an_ejection() {
        let ep = passive("127.0.0.1:1".parse().unwrap());
        assert_eq!(ep.record_check(false, 1, 1), Some(false));
        ep.record_failure();
        assert_eq!(ep.record_check(true, 1, 1), Some(true));
        assert!(ep.is_available(), "restored by the check, not by the clock");
    }

    #[test]
    fn health_needs_consecutive_results() {
        let ep = Endpoint::new("127.0.0.1:1".parse().unwrap());
        assert_eq!(ep.record_check(false, 2, 3), None);
        assert_eq!(ep.record_check(false, 2, 3), None);
        assert_eq!(ep.record_check(false, 2, 3), Some(false));
        assert!(!ep.is_available());
        assert_eq!(ep.record_check(true, 2, 3), None);
        assert_eq!(ep.record_check(true, 2, 3), Some(true));
        assert!(ep.is_available());
    }

    #[tokio::test(start_paused = true)]
    async fn ewma_takes_peaks_and_decays() {
        let ep = Endpoint::new("127.0.0.1:1".parse().unwrap());
        let g = ep.start();
        assert_eq!(ep.in_flight(), 1);
        tokio::time::advance(Duration::from_millis(50)).await;
        g.finish();
        assert_eq!(ep.in_flight(), 0);
        assert!(ep.latency_ns() >= 50_000_000.0);
        tokio::time::advance(Duration::from_secs(30)).await;
        let g = ep.start();
        g.finish();
        assert!(ep.latency_ns() < 5_000_000.0, "{}", ep.latency_ns());
    }
}
