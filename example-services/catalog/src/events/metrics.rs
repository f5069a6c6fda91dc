//! Counters of the event consumers, served as Prometheus text at `GET /metrics`.
//!
//! `weir_catalog_events_total{bus, outcome}` counts each message a consumer
//! finished with: `applied` (first time), `duplicate` (seen before, no
//! effect) and `set_aside` (could not be read; kept in `dead_letters`). A
//! growing `set_aside` is the alarm for a producer writing what consumers
//! cannot read.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    bus: &'static str,
    outcome: &'static str,
}

/// The consumers' counters and the registry that renders them.
#[derive(Debug)]
pub struct EventStats {
    registry: Registry,
    events: Family<Labels, Counter>,
}

impl Default for EventStats {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("weir_catalog");
        let events = Family::<Labels, Counter>::default();
        registry.register(
            "events",
            "Order event messages consumed, by bus and outcome (applied, duplicate, set_aside)",
            events.clone(),
        );
        Self { registry, events }
    }
}

impl EventStats {
    /// Counts one message of `bus` that ended as `outcome`.
    pub(crate) fn count(&self, bus: &'static str, outcome: &'static str) {
        self.events.get_or_create(&Labels { bus, outcome }).inc();
    }

    /// How many messages of `bus` ended as `outcome` so far.
    pub fn get(&self, bus: &'static str, outcome: &'static str) -> u64 {
        self.events.get_or_create(&Labels { bus, outcome }).get()
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// `GET /metrics`.
pub(crate) async fn serve(State(stats): State<Arc<EventStats>>) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        stats.render(),
    )
}
