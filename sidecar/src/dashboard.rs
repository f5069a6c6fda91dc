//! What the sidecar's dashboard shows (`GET /dashboard` on the admin port).
//!
//! Built from named fields of the running state and the metrics registry,
//! never from the config's serialisation (collector headers and credentials
//! in URLs are not among the fields read here).
//!
//! - inbound: in-flight requests against the concurrency limit, and
//!   `weir_sidecar_requests_total` / `…_request_duration_seconds` with
//!   `direction="inbound"`;
//! - each destination: its endpoints with breaker state (the ejection
//!   countdown while open), EWMA latency and in-flight requests, the retry
//!   budget left, and rates from the same families with
//!   `direction="outbound"` plus `weir_sidecar_retries_total`;
//! - `identity`: the workload identity this sidecar proves (SPIFFE ID,
//!   expiry, credential versions used), `null` without an `identity:` section.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use proxy_core::admin::dashboard::{Counts, DashboardSource, RateTracker, Samples};
use serde_json::{Map, Value, json};

use crate::runtime::Runtime;

const REQUESTS: &str = "weir_sidecar_requests_total";
const LATENCY: &str = "weir_sidecar_request_duration_seconds";

/// The sidecar's [`DashboardSource`].
pub(crate) struct SidecarDashboard {
    runtime: Arc<ArcSwap<Runtime>>,
    registry: Arc<Registry>,
    rates: RateTracker,
    mesh: crate::mesh::Mesh,
}

impl SidecarDashboard {
    pub(crate) fn new(
        runtime: Arc<ArcSwap<Runtime>>,
        registry: Arc<Registry>,
        mesh: crate::mesh::Mesh,
    ) -> Self {
        Self {
            runtime,
            registry,
            rates: RateTracker::default(),
            mesh,
        }
    }
}

fn counts(samples: &Samples, direction: &str, destination: &str) -> Counts {
    let labels = [("direction", direction), ("destination", destination)];
    let mut other = BTreeMap::new();
    if direction == "outbound" {
        other.insert(
            "retries".to_owned(),
            samples.sum(
                "weir_sidecar_retries_total",
                &[("destination", destination)],
            ),
        );
    }
    Counts {
        requests: samples.sum(REQUESTS, &labels),
        errors: samples.sum(
            REQUESTS,
            &[
                ("direction", direction),
                ("destination", destination),
                ("status_class", "5xx"),
            ],
        ),
        buckets: samples.buckets(LATENCY, &labels),
        other,
    }
}

impl DashboardSource for SidecarDashboard {
    fn kind(&self) -> &'static str {
        "sidecar"
    }

    fn snapshot(&self) -> Map<String, Value> {
        let rt = self.runtime.load_full();
        let samples = Samples::read(&self.registry);
        let service = rt.config.service.clone();
        let mut all = BTreeMap::new();
        all.insert(
            format!("inbound:{service}"),
            counts(&samples, "inbound", &service),
        );
        for name in rt.destinations.keys() {
            all.insert(format!("out:{name}"), counts(&samples, "outbound", name));
        }
        let rates = self.rates.update(all);

        let destinations: Vec<Value> = rt
            .destinations
            .iter()
            .map(|(name, d)| {
                let detector = d.discovery.detector();
                let breakers = detector.snapshot();
                let endpoints: Vec<Value> = d
                    .discovery
                    .group()
                    .endpoints()
                    .iter()
                    .map(|e| {
                        let b = breakers.iter().find(|b| b.address == e.addr);
                        json!({
                            "address": e.addr.to_string(),
                            "breaker": b.map(|b| json!({
                                "state": b.state.as_str(),
                                "ejected_for_ms": b.ejected_for_ms,
                                "consecutive_failures": b.consecutive_failures,
                                "ejections": b.ejections,
                                "success_rate": b.success_rate,
                            })).unwrap_or_else(|| json!({"state": "closed"})),
                            "healthy": e.is_healthy(),
                            "in_flight": e.in_flight(),
                            "latency_ewma_ms": e.latency_ns() / 1e6,
                        })
                    })
                    .collect();
                json!({
                    "name": name,
                    "load_balancer": d.settings.load_balancer,
                    "ejected": detector.ejected(),
                    "endpoints": endpoints,
                    "retry_budget": {
                        "remaining": d.budget.remaining(),
                        "ratio": d.settings.budget.ratio,
                        "min_per_second": d.settings.budget.min_per_second,
                        "window_ms": d.settings.budget.window.as_millis() as u64,
                    },
                    "traffic": rates.get(&format!("out:{name}")),
                })
            })
            .collect();
        let inbound = &rt.config.inbound;
        let mut out = Map::new();
        out.insert("service".into(), json!(service));
        // The same as `/state`'s: SPIFFE ID, expiry, credential versions used.
        out.insert("identity".into(), self.mesh.state_json());
        out.insert(
            "inbound".into(),
            json!({
                "in_flight": inbound.max_concurrent_requests - rt.inbound_slots.available_permits(),
                "max_concurrent_requests": inbound.max_concurrent_requests,
                "rejected": samples.sum("weir_sidecar_inbound_rejected_total", &[]),
                "traffic": rates.get(&format!("inbound:{service}")),
            }),
        );
        out.insert("destinations".into(), Value::Array(destinations));
        out
    }
}
