//! The gateway's Prometheus metrics.
//!
//! Families are registered once per process; the per-route handles are
//! resolved when a route table is built, so a request only bumps atomics.

use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use proxy_core::metrics::{GrpcStatusCounters, latency_histogram};
use proxy_core::reload::ReloadMetrics;

use crate::snapshot::Snapshot;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatusLabels {
    pub route: String,
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteGrpcLabels {
    pub route: String,
    /// The code's name (`UNAVAILABLE`): at most 17 values.
    pub grpc_status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub upstream: String,
    pub kind: &'static str,
}

/// Every metric family of the gateway.
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    pub requests: Family<RouteStatusLabels, Counter>,
    pub duration: Family<RouteLabels, Histogram>,
    pub grpc_responses: Family<RouteGrpcLabels, Counter>,
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    pub active_connections: Gauge,
    pub reloads: ReloadMetrics,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            grpc_responses: Family::default(),
            upstream_errors: Family::default(),
            active_connections: Gauge::default(),
            reloads: ReloadMetrics::default(),
        }
    }
}

impl GatewayMetrics {
    pub fn register(&self, registry: &mut Registry, snapshot: Arc<ArcSwap<Snapshot>>) {
        registry.register(
            "weir_requests",
            "Requests by route and status class",
            self.requests.clone(),
        );
        registry.register(
            "weir_request_duration_seconds",
            "Time from request head to response head, by route",
            self.duration.clone(),
        );
        registry.register(
            "weir_grpc_responses",
            "gRPC calls by route and grpc-status (a failed call is HTTP 200)",
            self.grpc_responses.clone(),
        );
        registry.register(
            "weir_upstream_errors",
            "Failed upstream exchanges by upstream and kind",
            self.upstream_errors.clone(),
        );
        registry.register(
            "weir_active_connections",
            "Open client connections",
            self.active_connections.clone(),
        );
        self.reloads.register(registry);
        registry.register_collector(Box::new(EndpointHealth(snapshot)));
    }

    /// Handles for one route, resolved once per table build.
    pub fn route_handles(&self, route: &str) -> RouteHandles {
        let counter = |class| {
            self.requests
                .get_or_create(&RouteStatusLabels {
                    route: route.to_owned(),
                    status_class: class,
                })
                .clone()
        };
        RouteHandles {
            by_class: [
                counter("1xx"),
                counter("2xx"),
                counter("3xx"),
                counter("4xx"),
                counter("5xx"),
            ],
            duration: self
                .duration
                .get_or_create(&RouteLabels {
                    route: route.to_owned(),
                })
                .clone(),
            grpc: {
                let family = self.grpc_responses.clone();
                let route = route.to_owned();
                GrpcStatusCounters::new(move |code| {
                    family
                        .get_or_create(&RouteGrpcLabels {
                            route: route.clone(),
                            grpc_status: code.name(),
                        })
                        .clone()
                })
            },
        }
    }
}

/// Pre-resolved metric handles of one route.
#[derive(Clone, Debug)]
pub struct RouteHandles {
    pub by_class: [Counter; 5],
    pub duration: Histogram,
    /// Calls by `grpc-status`, for gRPC requests.
    pub grpc: GrpcStatusCounters,
}

impl RouteHandles {
    pub fn record(&self, status: u16, secs: f64) {
        self.by_class[proxy_core::metrics::status_class_index(status)].inc();
        self.duration.observe(secs);
    }
}

/// `weir_upstream_endpoint_healthy{upstream,endpoint}`, read from the live
/// snapshot at scrape time so endpoints found by DNS appear and vanish.
struct EndpointHealth(Arc<ArcSwap<Snapshot>>);

impl std::fmt::Debug for EndpointHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointHealth")
    }
}

impl Collector for EndpointHealth {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.0.load();
        {
            let mut family = encoder.encode_descriptor(
                "weir_upstream_endpoint_healthy",
                "1 when the endpoint takes traffic",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (upstream, u) in &snap.upstreams {
                for ep in u.group.endpoints().iter() {
                    let labels = [
                        ("upstream", upstream.clone()),
                        ("endpoint", ep.addr.to_string()),
                    ];
                    ConstGauge::new(i64::from(ep.is_available()))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "weir_upstream_endpoint_in_flight",
            "Requests outstanding on the endpoint",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (upstream, u) in &snap.upstreams {
            for ep in u.group.endpoints().iter() {
                let labels = [
                    ("upstream", upstream.clone()),
                    ("endpoint", ep.addr.to_string()),
                ];
                ConstGauge::new(i64::from(ep.in_flight()))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
