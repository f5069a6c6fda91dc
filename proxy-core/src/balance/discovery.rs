//! DNS discovery: a name (a Kubernetes headless Service, say) re-resolved on an
//! interval, each address its own endpoint so balancing and ejection work per pod.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::Endpoint;
use crate::resilience::OutlierDetector;

/// Replaces the set with `addrs`, reusing the `Endpoint` of every address that
/// stays so its load, latency and ejection history survive the refresh. The
/// detector follows: new endpoints get an ejection state, gone ones stop
/// counting against `max_percent`.
pub(super) fn apply(
    set: &ArcSwap<Vec<Arc<Endpoint>>>,
    detector: &OutlierDetector,
    addrs: &[SocketAddr],
) {
    let current = set.load();
    let wanted: BTreeSet<SocketAddr> = addrs.iter().copied().collect();
    let same = current.len() == wanted.len() && current.iter().all(|e| wanted.contains(&e.addr));
    if same {
        return;
    }
    let wanted: Vec<SocketAddr> = wanted.into_iter().collect();
    let ejection = detector.sync(&wanted);
    let next: Vec<Arc<Endpoint>> = wanted
        .iter()
        .zip(ejection)
        .map(|(a, health)| {
            current
                .iter()
                .find(|e| e.addr == *a)
                .cloned()
                .unwrap_or_else(|| Endpoint::with_ejection(*a, health))
        })
        .collect();
    set.store(Arc::new(next));
}

pub(super) async fn refresh_loop(
    upstream: String,
    names: Vec<(String, u16)>,
    statics: Vec<SocketAddr>,
    set: Arc<ArcSwap<Vec<Arc<Endpoint>>>>,
    detector: Arc<OutlierDetector>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut addrs = statics.clone();
        let mut failed = false;
        for (host, port) in &names {
            match tokio::net::lookup_host((host.as_str(), *port)).await {
                Ok(found) => addrs.extend(found),
                Err(e) => {
                    failed = true;
                    tracing::warn!(%upstream, %host, error = %e, "DNS resolution failed; keeping previous endpoints");
                }
            }
        }
        // A failed lookup keeps the previous set rather than emptying the upstream.
        if !failed {
            apply(&set, &detector, &addrs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_keeps_existing_endpoints() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let detector = OutlierDetector::new(crate::resilience::BreakerSettings::default());
        let set = ArcSwap::from_pointee(Vec::new());
        apply(&set, &detector, &[a]);
        let first = set.load()[0].clone();
        apply(&set, &detector, &[a, b]);
        let now = set.load();
        assert_eq!(now.len(), 2);
        assert!(Arc::ptr_eq(&now[0], &first));
        assert!(Arc::ptr_eq(now[0].ejection(), &detector.endpoint(a)));
        apply(&set, &detector, &[b]);
        assert_eq!(set.load().len(), 1);
        assert_eq!(detector.snapshot().len(), 1, "the gone endpoint is retired");
    }

    #[tokio::test]
    async fn resolves_localhost() {
        let set = Arc::new(ArcSwap::from_pointee(Vec::new()));
        let detector = Arc::new(OutlierDetector::new(
            crate::resilience::BreakerSettings::default(),
        ));
        let task = tokio::spawn(refresh_loop(
            "t".into(),
            vec![("localhost".into(), 80)],
            vec![],
            set.clone(),
            detector,
            Duration::from_secs(60),
        ));
        for _ in 0..200 {
            if !set.load().is_empty() {
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
        assert!(
            set.load()
                .iter()
                .all(|e| e.addr.port() == 80 && e.addr.ip().is_loopback())
        );
        assert!(!set.load().is_empty());
    }
}
