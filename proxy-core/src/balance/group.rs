//! An upstream's endpoints, the policy that picks among them, and the
//! background tasks (DNS refresh, active health checks) that keep them current.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use super::{Endpoint, Picker, discovery, health};
use crate::config::{EndpointAddr, HealthCheckConfig, LoadBalancerKind};
use crate::resilience::{BreakerHook, BreakerSettings, OutlierDetector};

/// How to build an [`EndpointGroup`].
#[derive(Clone)]
pub struct GroupOptions {
    pub name: String,
    pub endpoints: Vec<EndpointAddr>,
    pub load_balancer: LoadBalancerKind,
    pub health_check: Option<HealthCheckConfig>,
    /// How often `dns:` endpoints are re-resolved.
    pub dns_refresh: Duration,
    /// When an endpoint is ejected and for how long (the sidecar's
    /// `circuit_breaker`, the gateway's `passive_ejection`).
    pub ejection: BreakerSettings,
    /// Told of every ejection transition (metrics, logs).
    pub ejection_hook: Option<BreakerHook>,
}

impl std::fmt::Debug for GroupOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupOptions")
            .field("name", &self.name)
            .field("endpoints", &self.endpoints)
            .field("load_balancer", &self.load_balancer)
            .field("health_check", &self.health_check)
            .field("dns_refresh", &self.dns_refresh)
            .field("ejection", &self.ejection)
            .finish_non_exhaustive()
    }
}

/// The endpoints of one upstream. Cheap to share (`Arc`); its background tasks
/// stop when the last reference goes, i.e. once a reload replaced the upstream
/// and the last request using the old one finished.
#[derive(Debug)]
pub struct EndpointGroup {
    name: String,
    endpoints: Arc<ArcSwap<Vec<Arc<Endpoint>>>>,
    /// The ejection state of every endpoint in the set.
    detector: Arc<OutlierDetector>,
    picker: Picker,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for EndpointGroup {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl EndpointGroup {
    /// Builds the group and starts its background tasks (must run inside a
    /// tokio runtime when DNS endpoints or health checks are configured).
    pub fn new(opts: GroupOptions) -> Arc<Self> {
        let detector = Arc::new(match opts.ejection_hook.clone() {
            Some(hook) => OutlierDetector::with_hook(opts.ejection, hook),
            None => OutlierDetector::new(opts.ejection),
        });
        let endpoints = Arc::new(ArcSwap::from_pointee(Vec::new()));
        let statics: Vec<_> = opts
            .endpoints
            .iter()
            .filter_map(|e| match e {
                EndpointAddr::Static(a) => Some(*a),
                EndpointAddr::Dns { .. } => None,
            })
            .collect();
        discovery::apply(&endpoints, &detector, &statics);
        let mut tasks = Vec::new();
        let dns: Vec<(String, u16)> = opts
            .endpoints
            .iter()
            .filter_map(|e| match e {
                EndpointAddr::Dns { host, port } => Some((host.clone(), *port)),
                EndpointAddr::Static(_) => None,
            })
            .collect();
        if !dns.is_empty() {
            tasks.push(tokio::spawn(discovery::refresh_loop(
                opts.name.clone(),
                dns,
                statics,
                endpoints.clone(),
                detector.clone(),
                opts.dns_refresh,
            )));
        }
        if let Some(hc) = opts.health_check.clone() {
            tasks.push(tokio::spawn(health::check_loop(
                opts.name.clone(),
                hc,
                endpoints.clone(),
            )));
        }
        Arc::new(Self {
            name: opts.name,
            endpoints,
            detector,
            picker: Picker::new(opts.load_balancer),
            tasks,
        })
    }

    /// A group over fixed addresses with no background tasks and default
    /// ejection settings (tests, tools).
    pub fn fixed(name: &str, addrs: &[std::net::SocketAddr], lb: LoadBalancerKind) -> Arc<Self> {
        let detector = Arc::new(OutlierDetector::new(BreakerSettings::default()));
        let endpoints = Arc::new(ArcSwap::from_pointee(Vec::new()));
        discovery::apply(&endpoints, &detector, addrs);
        Arc::new(Self {
            name: name.to_owned(),
            endpoints,
            detector,
            picker: Picker::new(lb),
            tasks: Vec::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current endpoints.
    pub fn endpoints(&self) -> arc_swap::Guard<Arc<Vec<Arc<Endpoint>>>> {
        self.endpoints.load()
    }

    /// The ejection state of the set (counts, `/state` snapshots).
    pub fn detector(&self) -> &Arc<OutlierDetector> {
        &self.detector
    }

    /// The policy that picks among the endpoints.
    pub fn picker(&self) -> &Picker {
        &self.picker
    }

    /// Picks an available endpoint.
    pub fn pick(&self) -> Option<Arc<Endpoint>> {
        self.picker.pick(&self.endpoints.load())
    }

    /// Picks with a custom availability rule (e.g. the sidecar's breaker).
    pub fn pick_where(&self, usable: impl Fn(&Endpoint) -> bool) -> Option<Arc<Endpoint>> {
        self.picker.pick_where(&self.endpoints.load(), usable)
    }

    /// Replaces the endpoint set, keeping the statistics of endpoints that stay.
    pub fn set_addresses(&self, addrs: &[std::net::SocketAddr]) {
        discovery::apply(&self.endpoints, &self.detector, addrs);
    }
}
