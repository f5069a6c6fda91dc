//! Service discovery for one destination: static endpoints and `dns:` names
//! re-resolved on an interval (a Kubernetes headless Service answers with every
//! pod IP), so balancing and ejection work per endpoint.
//!
//! The endpoint set and its DNS refresh live in `proxy_core::balance`'s
//! [`EndpointGroup`]; what this module adds is keeping the destination's
//! [`OutlierDetector`] in step with that set (new endpoints get a breaker, gone
//! ones stop counting against `max_percent`) and the endpoint gauges.

use std::sync::Arc;

use proxy_core::balance::{EndpointGroup, GroupOptions};
use proxy_core::resilience::OutlierDetector;
use tokio::task::JoinHandle;

use crate::config::ServiceSettings;
use crate::metrics::SidecarMetrics;

/// The live endpoints of one destination and their breakers.
pub(crate) struct Discovery {
    group: Arc<EndpointGroup>,
    detector: Arc<OutlierDetector>,
    sync_task: Option<JoinHandle<()>>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        if let Some(t) = &self.sync_task {
            t.abort();
        }
    }
}

impl Discovery {
    /// Starts discovery for `settings` (inside a tokio runtime).
    pub(crate) fn new(settings: &ServiceSettings, metrics: &SidecarMetrics) -> Discovery {
        let group = EndpointGroup::new(GroupOptions {
            name: settings.name.clone(),
            endpoints: settings.endpoints.clone(),
            load_balancer: settings.load_balancer,
            health_check: None,
            dns_refresh: settings.dns_refresh,
        });
        let hook_metrics = metrics.clone();
        let name = settings.name.clone();
        // The hook needs the detector's ejection count; it is reported by the
        // transition itself through a weak handle set right after construction.
        let slot: Arc<std::sync::OnceLock<std::sync::Weak<OutlierDetector>>> = Arc::default();
        let hook_slot = slot.clone();
        let detector = Arc::new(OutlierDetector::with_hook(
            settings.breaker,
            Arc::new(move |addr, from, to| {
                let ejected = hook_slot
                    .get()
                    .and_then(std::sync::Weak::upgrade)
                    .map_or(0, |d| d.ejected());
                tracing::info!(destination = %name, endpoint = %addr, from = from.as_str(), to = to.as_str(), "breaker transition");
                hook_metrics.breaker_transition(&name, addr, to, ejected);
            }),
        ));
        let _ = slot.set(Arc::downgrade(&detector));
        sync(&group, &detector, metrics, &settings.name);
        let has_dns = settings
            .endpoints
            .iter()
            .any(|e| matches!(e, proxy_core::config::EndpointAddr::Dns { .. }));
        let sync_task = has_dns.then(|| {
            let (g, d, m) = (
                Arc::downgrade(&group),
                Arc::downgrade(&detector),
                metrics.clone(),
            );
            let name = settings.name.clone();
            let every = settings.dns_refresh;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let (Some(g), Some(d)) = (g.upgrade(), d.upgrade()) else {
                        return;
                    };
                    sync(&g, &d, &m, &name);
                }
            })
        });
        Discovery {
            group,
            detector,
            sync_task,
        }
    }

    /// The endpoint set.
    pub(crate) fn group(&self) -> &Arc<EndpointGroup> {
        &self.group
    }

    /// The breakers of the endpoints.
    pub(crate) fn detector(&self) -> &Arc<OutlierDetector> {
        &self.detector
    }
}

/// Brings the detector in step with the group's current endpoints.
fn sync(group: &EndpointGroup, detector: &OutlierDetector, metrics: &SidecarMetrics, name: &str) {
    let addrs: Vec<_> = group.endpoints().iter().map(|e| e.addr).collect();
    let known = detector.snapshot();
    let same = known.len() == addrs.len() && known.iter().all(|s| addrs.contains(&s.address));
    if !same {
        detector.sync(&addrs);
        tracing::debug!(destination = %name, endpoints = addrs.len(), "endpoint set changed");
    }
    metrics.set_endpoints(name, addrs.len());
    metrics.set_ejected(name, detector.ejected());
}
