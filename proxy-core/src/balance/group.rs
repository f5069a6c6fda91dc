//! An upstream's endpoints, the policy that picks among them, and the
//! background tasks (DNS refresh, active health checks) that keep them current.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use super::{Endpoint, Picker, discovery, health};
use crate::config::{EndpointAddr, HealthCheckConfig, LoadBalancerKind};

/// How to build an [`EndpointGroup`].
#[derive(Clone, Debug)]
pub struct GroupOptions {
    pub name: String,
    pub endpoints: Vec<EndpointAddr>,
    pub load_balancer: LoadBalancerKind,
    pub health_check: Option<HealthCheckConfig>,
    /// How often `dns:` endpoints are re-resolved.
    pub dns_refresh: Duration,
}

/// The endpoints of one upstream. Cheap to share (`Arc`); its background tasks
/// stop when the last reference goes, i.e. once a reload replaced the upstream
/// and the last request using the old one finished.
#[derive(Debug)]
pub struct EndpointGroup {
    name: String,
    endpoints: Arc<ArcSwap<Vec<Arc<Endpoint>>>>,
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
        let statics: Vec<Arc<Endpoint>> = opts
            .endpoints
            .iter()
            .filter_map(|e| match e {
                EndpointAddr::Static(a) => Some(Endpoint::new(*a)),
                EndpointAddr::Dns { .. } => None,
            })
            .collect();
        let endpoints = Arc::new(ArcSwap::from_pointee(statics));
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
            let statics: Vec<_> = endpoints.load().iter().map(|e| e.addr).collect();
            tasks.push(tokio::spawn(discovery::refresh_loop(
                opts.name.clone(),
                dns,
                statics,
                endpoints.clone(),
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
            picker: Picker::new(opts.load_balancer),
            tasks,
        })
    }

    /// A group over fixed addresses with no background tasks (tests, tools).
    pub fn fixed(name: &str, addrs: &[std::net::SocketAddr], lb: LoadBalancerKind) -> Arc<Self> {
        let endpoints = addrs.iter().map(|a| Endpoint::new(*a)).collect();
        Arc::new(Self {
            name: name.to_owned(),
            endpoints: Arc::new(ArcSwap::from_pointee(endpoints)),
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
        discovery::apply(&self.endpoints, addrs);
    }
}
