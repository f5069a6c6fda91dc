//! The runtime snapshot a config produces, swapped whole on reload.
//!
//! Requests load the snapshot once when they start and keep it until they end.
//! A reload builds the next snapshot off to the side, reusing every destination
//! whose section did not change (its pools, breaker states, latencies and
//! budget carry over), and swaps it in with one store. Listener addresses are
//! bound once; a reload that changes them is refused.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use http::uri::Authority;
use proxy_core::config::{ConfigErrors, EndpointAddr};
use proxy_core::forward::{ClientOptions, UpstreamClient, endpoint_authority};
use proxy_core::telemetry::Telemetry;
use tokio::sync::Semaphore;

use crate::authz::Authorizer;
use crate::config::SidecarConfig;
use crate::destination::Destination;
use crate::mesh::Mesh;
use crate::metrics::{SidecarMetrics, TrafficMetrics};

/// Everything a request needs, for one version of the config.
pub(crate) struct Runtime {
    pub(crate) config: SidecarConfig,
    pub(crate) destinations: BTreeMap<String, Arc<Destination>>,
    /// The inbound concurrency limit (shared across reloads while unchanged).
    pub(crate) inbound_slots: Arc<Semaphore>,
    /// The pool to the local app.
    pub(crate) app_client: UpstreamClient,
    /// `inbound.app` as the authority the pool is keyed by, formatted once
    /// per snapshot rather than per request.
    pub(crate) app_authority: Authority,
    /// The pool for transparent-mode traffic to destinations not configured.
    pub(crate) passthrough: UpstreamClient,
    /// Who may call the app (`inbound.authorization`, default resolved).
    pub(crate) authorizer: Authorizer,
    pub(crate) inbound_traffic: TrafficMetrics,
    pub(crate) passthrough_traffic: TrafficMetrics,
    /// The access log's `upstream` for inbound and passthrough traffic,
    /// allocated once rather than per line.
    pub(crate) app_label: Arc<str>,
    pub(crate) passthrough_label: Arc<str>,
    pub(crate) metrics: SidecarMetrics,
    pub(crate) telemetry: Telemetry,
    /// The workload identity (the same for every snapshot of a process).
    pub(crate) mesh: Mesh,
}

impl Runtime {
    /// Builds a snapshot for `config`, reusing what `previous` has that is unchanged.
    pub(crate) fn build(
        config: SidecarConfig,
        previous: Option<&Runtime>,
        metrics: &SidecarMetrics,
        telemetry: &Telemetry,
        mesh: &Mesh,
    ) -> Result<Runtime, ConfigErrors> {
        if let Some(prev) = previous {
            let mut errs = ConfigErrors::new();
            let p = &prev.config;
            if p.inbound.address != config.inbound.address {
                errs.push(
                    "inbound.address",
                    "cannot change on reload; restart the sidecar",
                );
            }
            if p.outbound.address != config.outbound.address
                || p.outbound.transparent != config.outbound.transparent
            {
                errs.push(
                    "outbound",
                    "address and transparent cannot change on reload; restart the sidecar",
                );
            }
            if p.admin != config.admin {
                errs.push(
                    "admin.address",
                    "cannot change on reload; restart the sidecar",
                );
            }
            if !errs.is_empty() {
                return Err(errs);
            }
        }
        let destinations = config
            .services
            .iter()
            .map(|(name, settings)| {
                let reused = previous
                    .and_then(|p| p.destinations.get(name))
                    .filter(|d| d.settings == *settings)
                    .cloned();
                let dest = reused.unwrap_or_else(|| {
                    Destination::new(settings.clone(), metrics, telemetry, mesh)
                });
                (name.clone(), dest)
            })
            .collect();
        let same_inbound = previous.filter(|p| p.config.inbound == config.inbound);
        let inbound_slots = same_inbound.map_or_else(
            || Arc::new(Semaphore::new(config.inbound.max_concurrent_requests)),
            |p| p.inbound_slots.clone(),
        );
        let app_client = same_inbound.map_or_else(
            || {
                UpstreamClient::new(&ClientOptions {
                    protocol: config.inbound.protocol,
                    ..ClientOptions::default()
                })
            },
            |p| p.app_client.clone(),
        );
        let passthrough = previous.map_or_else(
            || {
                UpstreamClient::new(&ClientOptions {
                    protocol: proxy_core::config::Protocol::Auto,
                    ..ClientOptions::default()
                })
            },
            |p| p.passthrough.clone(),
        );
        let authorizer = Authorizer::new(config.inbound.authorization.clone(), mesh.meshed());
        Ok(Runtime {
            app_authority: endpoint_authority(config.inbound.app),
            authorizer,
            inbound_traffic: metrics.traffic("inbound", &config.service),
            passthrough_traffic: metrics.traffic("outbound", "passthrough"),
            app_label: Arc::from("app"),
            passthrough_label: Arc::from("passthrough"),
            metrics: metrics.clone(),
            telemetry: telemetry.clone(),
            mesh: mesh.clone(),
            config,
            destinations,
            inbound_slots,
            app_client,
            passthrough,
        })
    }

    /// The destination a request for `host` (a `Host` header or URI authority,
    /// with or without port) goes to: the exact service name, or a Kubernetes
    /// service DNS name whose first label is a service name (`catalog.shop`,
    /// `catalog.shop.svc`, `catalog.shop.svc.cluster.local`). Other dotted names
    /// (`catalog.example.com`) never match, so external hosts are not captured.
    pub(crate) fn destination_for_host(&self, host: &str) -> Option<&Arc<Destination>> {
        let name = strip_port(host);
        if let Some(d) = self.destinations.get(name) {
            return Some(d);
        }
        let (first, rest) = name.split_once('.')?;
        let mut labels = rest.split('.');
        let namespace = labels.next().filter(|n| !n.is_empty())?;
        let kubernetes = match labels.next() {
            None => !namespace.is_empty(),
            Some("svc") => true,
            Some(_) => false,
        };
        if kubernetes {
            self.destinations.get(first)
        } else {
            None
        }
    }

    /// The destination that has `addr` as a static endpoint or current
    /// endpoint (transparent mode, where the app dialled an address).
    pub(crate) fn destination_for_addr(&self, addr: SocketAddr) -> Option<&Arc<Destination>> {
        self.destinations.values().find(|d| {
            d.settings.endpoints.contains(&EndpointAddr::Static(addr)) || d.has_endpoint(addr)
        })
    }
}

/// `catalog:80` → `catalog`, `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("catalog:80"), "catalog");
        assert_eq!(strip_port("catalog"), "catalog");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
