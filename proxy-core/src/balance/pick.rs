//! Load-balancing policies.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Endpoint;
use crate::config::LoadBalancerKind;

/// Picks one endpoint out of a set.
#[derive(Debug)]
pub struct Picker {
    kind: LoadBalancerKind,
    next: AtomicUsize,
}

impl Picker {
    pub fn new(kind: LoadBalancerKind) -> Self {
        Self {
            kind,
            next: AtomicUsize::new(fastrand::usize(..1024)),
        }
    }

    pub fn kind(&self) -> LoadBalancerKind {
        self.kind
    }

    /// Picks an available endpoint, or `None` when none is available.
    pub fn pick(&self, endpoints: &[Arc<Endpoint>]) -> Option<Arc<Endpoint>> {
        self.pick_where(endpoints, |e| e.is_available())
    }

    /// Picks among endpoints accepted by `usable`.
    pub fn pick_where(
        &self,
        endpoints: &[Arc<Endpoint>],
        usable: impl Fn(&Endpoint) -> bool,
    ) -> Option<Arc<Endpoint>> {
        self.pick_index(endpoints, usable)
            .map(|i| endpoints[i].clone())
    }

    /// The index of the endpoint [`pick_where`](Self::pick_where) would
    /// return, for callers that keep something per endpoint beside the set
    /// (the balancer service's prebuilt endpoint stacks).
    pub fn pick_index(
        &self,
        endpoints: &[Arc<Endpoint>],
        usable: impl Fn(&Endpoint) -> bool,
    ) -> Option<usize> {
        let n = endpoints.len();
        match n {
            0 => None,
            1 => usable(&endpoints[0]).then_some(0),
            _ => match self.kind {
                LoadBalancerKind::RoundRobin => self.round_robin(endpoints, &usable),
                LoadBalancerKind::P2c => p2c(endpoints, &usable, |e| f64::from(e.in_flight())),
                LoadBalancerKind::P2cEwma => p2c(endpoints, &usable, Endpoint::cost),
            },
        }
    }

    fn round_robin(
        &self,
        endpoints: &[Arc<Endpoint>],
        usable: &impl Fn(&Endpoint) -> bool,
    ) -> Option<usize> {
        let n = endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| usable(&endpoints[i]))
    }
}

/// Power of two choices: sample two distinct endpoints, keep the cheaper.
/// Falls back to a scan when the samples are unusable, so an endpoint set that
/// is mostly down still finds its healthy members.
fn p2c(
    endpoints: &[Arc<Endpoint>],
    usable: &impl Fn(&Endpoint) -> bool,
    cost: impl Fn(&Endpoint) -> f64,
) -> Option<usize> {
    let n = endpoints.len();
    let a = fastrand::usize(..n);
    let mut b = fastrand::usize(..n - 1);
    if b >= a {
        b += 1;
    }
    let (ea, eb) = (&endpoints[a], &endpoints[b]);
    match (usable(ea), usable(eb)) {
        (true, true) => Some(if cost(eb) < cost(ea) { b } else { a }),
        (true, false) => Some(a),
        (false, true) => Some(b),
        (false, false) => (0..n)
            .filter(|&i| usable(&endpoints[i]))
            .min_by(|&x, &y| cost(&endpoints[x]).total_cmp(&cost(&endpoints[y]))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn eps(n: usize) -> Vec<Arc<Endpoint>> {
        let d =
            crate::resilience::OutlierDetector::new(crate::resilience::BreakerSettings::passive(
                Duration::from_secs(10),
                Duration::from_secs(10),
            ));
        (0..n)
            .map(|i| {
                let a = format!("127.0.0.1:{}", 1000 + i).parse().unwrap();
                Endpoint::with_ejection(a, d.endpoint(a))
            })
            .collect()
    }

    #[test]
    fn round_robin_cycles_and_skips_unavailable() {
        let e = eps(3);
        e[1].record_failure();
        let p = Picker::new(LoadBalancerKind::RoundRobin);
        let picks: Vec<u16> = (0..6).map(|_| p.pick(&e).unwrap().addr.port()).collect();
        assert!(!picks.contains(&1001));
        assert!(picks.contains(&1000) && picks.contains(&1002), "{picks:?}");
    }

    #[test]
    fn p2c_prefers_the_less_loaded() {
        let e = eps(2);
        let _busy: Vec<_> = (0..10).map(|_| e[0].start()).collect();
        let p = Picker::new(LoadBalancerKind::P2c);
        for _ in 0..20 {
            assert_eq!(p.pick(&e).unwrap().addr.port(), 1001);
        }
    }

    #[test]
    fn none_when_all_unavailable() {
        let e = eps(3);
        for ep in &e {
            ep.record_failure();
        }
        assert!(Picker::new(LoadBalancerKind::P2c).pick(&e).is_none());
        assert!(Picker::new(LoadBalancerKind::RoundRobin).pick(&e).is_none());
    }
}
