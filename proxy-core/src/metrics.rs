//! Prometheus metrics helpers shared by both proxies.
//!
//! We use `prometheus-client` with a registry owned by each process (no global
//! registry, so tests get fresh ones). Label families are resolved when a route
//! table or service is built, not per request: the hot path increments a
//! pre-resolved atomic counter and takes no lock.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets in seconds, from 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram with [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

/// `1xx` … `5xx` for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Index 0..=4 of a status class, for arrays of pre-resolved counters.
pub fn status_class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// Counters of gRPC calls by `grpc-status` for one scope (a route, a
/// destination). The label is the code's name, so it has at most 17 values.
/// Each code's counter is resolved from its family on first use and kept:
/// a scope that never sees gRPC exports no series, and every call after the
/// first for a code bumps an atomic without touching the family's lock.
#[derive(Clone)]
pub struct GrpcStatusCounters {
    cells: Arc<[OnceLock<Counter>; 17]>,
    resolve: Arc<dyn Fn(crate::grpc::Code) -> Counter + Send + Sync>,
}

impl GrpcStatusCounters {
    /// `resolve` gets a code's counter from the family, with the scope's
    /// labels and `grpc_status = code.name()`.
    pub fn new(resolve: impl Fn(crate::grpc::Code) -> Counter + Send + Sync + 'static) -> Self {
        Self {
            cells: Arc::new(std::array::from_fn(|_| OnceLock::new())),
            resolve: Arc::new(resolve),
        }
    }

    /// Counts one call that ended with `code`.
    pub fn inc(&self, code: crate::grpc::Code) {
        self.cells[code.as_u32() as usize]
            .get_or_init(|| (self.resolve)(code))
            .inc();
    }
}

impl std::fmt::Debug for GrpcStatusCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrpcStatusCounters")
    }
}

/// The registry in Prometheus text exposition format.
pub fn encode_text(registry: &Registry) -> String {
    let mut out = String::new();
    if encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}
