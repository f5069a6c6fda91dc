//! Service discovery for one destination: static endpoints and `dns:` names
//! re-resolved on an interval (a Kubernetes headless Service answers with every
//! pod IP), so balancing and ejection work per endpoint.
//!
//! The endpoint set, its DNS refresh and every endpoint's ejection state live
//! in `proxy_core::balance`'s [`EndpointGroup`] (built with the destination's
//! `circuit_breaker` settings); what this module adds is the metrics: breaker
//! transitions, and the endpoint and ejection gauges kept in step with the set.

use std::sync::{Arc, OnceLock, Weak};

use proxy_core::balance::{EndpointGroup, GroupOptions};
use proxy_core::resilience::OutlierDetector;
use tokio::task::JoinHandle;

use crate::config::ServiceSettings;
use crate::metrics::SidecarMetrics;

/// The live endpoints of one destination and their breakers.
pub(crate) struct Discovery {
    group: Arc<EndpointGroup>,
    gauge_task: Option<JoinHandle<()>>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        if let Some(t) = &self.gauge_task {
            t.abort();
        }
    }
}

impl Discovery {
    /// Starts discovery for `settings` (inside a tokio runtime).
    pub(crate) fn new(settings: &ServiceSettings, metrics: &SidecarMetrics) -> Discovery {
        let hook_metrics = metrics.clone();
        let name = settings.name.clone();
        // The hook reports the destination's ejection count, read from the
        // detector through a weak handle set once the group exists.
        let slot: Arc<OnceLock<Weak<EndpointGroup>>> = Arc::default();
        let hook_slot = slot.clone();
        let group = EndpointGroup::new(GroupOptions {
            name: settings.name.clone(),
            endpoints: settings.endpoints.clone(),
            load_balancer: settings.load_balancer,
            health_check: None,
            dns_refresh: settings.dns_refresh,
            ejection: settings.breaker,
            ejection_hook: Some(Arc::new(move |addr, from, to| {
                let ejected = hook_slot
                    .get()
                    .and_then(Weak::upgrade)
                    .map_or(0, |g| g.detector().ejected());
                tracing::info!(destination = %name, endpoint = %addr, from = from.as_str(), to = to.as_str(), "breaker transition");
                hook_metrics.breaker_transition(&name, addr, to, ejected);
            })),
        });
        let _ = slot.set(Arc::downgrade(&group));
        update_gauges(&group, metrics, &settings.name);
        let has_dns = settings
            .endpoints
            .iter()
            .any(|e| matches!(e, proxy_core::config::EndpointAddr::Dns { .. }));
        let gauge_task = has_dns.then(|| {
            let (g, m) = (Arc::downgrade(&group), metrics.clone());
            let name = settings.name.clone();
            let every = settings.dns_refresh;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(g) = g.upgrade() else { return };
                    update_gauges(&g, &m, &name);
                }
            })
        });
        Discovery { group, gauge_task }
    }

    /// The endpoint set.
    pub(crate) fn group(&self) -> &Arc<EndpointGroup> {
        &self.group
    }

    /// The breakers of the endpoints.
    pub(crate) fn detector(&self) -> &Arc<OutlierDetector> {
        self.group.detector()
    }
}

/// Brings the endpoint and ejection gauges in step with the group.
fn update_gauges(group: &EndpointGroup, metrics: &SidecarMetrics, name: &str) {
    metrics.set_endpoints(name, group.endpoints().len());
    metrics.set_ejected(name, group.detector().ejected());
}
