//! What the admin listener shows besides the shared endpoints: `/state` (every
//! destination's endpoints with breaker state, load and latency, and its retry
//! budget) and the effective config for `/config` with secrets redacted by
//! their type.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::{Value, json};

use crate::runtime::Runtime;

/// `GET /state`.
pub(crate) fn state_json(runtime: &Arc<ArcSwap<Runtime>>) -> Value {
    let rt = runtime.load();
    let destinations: serde_json::Map<String, Value> = rt
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
                    let breaker = breakers.iter().find(|b| b.address == e.addr);
                    json!({
                        "address": e.addr.to_string(),
                        "breaker": breaker.map_or(json!({"state": "closed"}), |b| json!(b)),
                        "in_flight": e.in_flight(),
                        "latency_ewma_ms": e.latency_ns() / 1e6,
                    })
                })
                .collect();
            let v = json!({
                "load_balancer": d.settings.load_balancer,
                "ejected": detector.ejected(),
                "endpoints": endpoints,
                "retry_budget": {
                    "remaining": d.budget.remaining(),
                    "ratio": d.settings.budget.ratio,
                    "min_per_second": d.settings.budget.min_per_second,
                    "window_ms": d.settings.budget.window.as_millis() as u64,
                },
            });
            (name.clone(), v)
        })
        .collect();
    json!({
        "service": rt.config.service,
        "inbound": {
            "app": rt.config.inbound.app.to_string(),
            "in_flight": rt.config.inbound.max_concurrent_requests - rt.inbound_slots.available_permits(),
            "max_concurrent_requests": rt.config.inbound.max_concurrent_requests,
            "tls_mode": rt.config.inbound.tls,
            "authorization_default": rt.authorizer.default_access().as_str(),
        },
        "identity": rt.mesh.state_json(),
        "destinations": destinations,
    })
}

/// `GET /config`: the file after environment overrides. Secrets (collector
/// headers, credentials in URLs) are typed as such in the config and
/// serialize as `<redacted>`; nothing here has to know their names.
pub(crate) fn config_json(runtime: &Arc<ArcSwap<Runtime>>) -> Value {
    let rt = runtime.load();
    serde_json::to_value(&rt.config.effective).unwrap_or(Value::Null)
}
