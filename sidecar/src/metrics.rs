//! The sidecar's Prometheus metrics (prefix `weir_sidecar_`).
//!
//! Families are registered once per process; the counters a request touches are
//! resolved when a destination is built ([`TrafficMetrics`]), so the hot path
//! increments pre-resolved atomics and takes no lock. Retries, budget
//! exhaustion and breaker transitions are rare and resolve their labels then.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use proxy_core::metrics::{GrpcStatusCounters, latency_histogram, status_class_index};
use proxy_core::resilience::{BreakerState, RetryEvent};

mod mesh;

pub(crate) use mesh::MeshMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    direction: &'static str,
    destination: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    direction: &'static str,
    destination: String,
    /// The code's name (`UNAVAILABLE`): at most 17 values.
    grpc_status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
    destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    destination: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    destination: String,
    endpoint: String,
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StackBuildLabels {
    destination: String,
    stack: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    protocol: &'static str,
}

#[derive(Clone)]
struct HistogramCtor;

impl MetricConstructor<Histogram> for HistogramCtor {
    fn new_metric(&self) -> Histogram {
        latency_histogram()
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Every sidecar metric family.
#[derive(Clone)]
pub struct SidecarMetrics {
    requests: Family<RequestLabels, Counter>,
    grpc: Family<GrpcLabels, Counter>,
    latency: Family<DirectionLabels, Histogram, HistogramCtor>,
    retries: Family<RetryLabels, Counter>,
    budget_exhausted: Family<DestinationLabels, Counter>,
    not_replayable: Family<DestinationLabels, Counter>,
    transitions: Family<TransitionLabels, Counter>,
    ejected: Family<DestinationLabels, Gauge>,
    endpoints: Family<DestinationLabels, Gauge>,
    in_flight: Family<DirectionLabels, Gauge>,
    rejected: Counter,
    connections: Family<ConnectionLabels, Counter>,
    stack_builds: Family<StackBuildLabels, Counter>,
    pub(crate) mesh: MeshMetrics,
}

impl std::fmt::Debug for SidecarMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SidecarMetrics").finish_non_exhaustive()
    }
}

impl Default for SidecarMetrics {
    fn default() -> Self {
        SidecarMetrics {
            requests: Family::default(),
            grpc: Family::default(),
            latency: Family::new_with_constructor(HistogramCtor),
            retries: Family::default(),
            budget_exhausted: Family::default(),
            not_replayable: Family::default(),
            transitions: Family::default(),
            ejected: Family::default(),
            endpoints: Family::default(),
            in_flight: Family::default(),
            rejected: Counter::default(),
            connections: Family::default(),
            stack_builds: Family::default(),
            mesh: MeshMetrics::default(),
        }
    }
}

impl SidecarMetrics {
    /// Registers every family in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry;
        r.register(
            "weir_sidecar_requests",
            "Requests by direction, destination and status class",
            self.requests.clone(),
        );
        r.register(
            "weir_sidecar_grpc_responses",
            "gRPC calls by direction, destination and grpc-status (a failed call is HTTP 200)",
            self.grpc.clone(),
        );
        r.register(
            "weir_sidecar_request_duration_seconds",
            "Time to the response head, by direction and destination",
            self.latency.clone(),
        );
        r.register(
            "weir_sidecar_retries",
            "Retries by destination and reason",
            self.retries.clone(),
        );
        r.register(
            "weir_sidecar_retry_budget_exhausted",
            "Retries refused because the destination's retry budget was empty",
            self.budget_exhausted.clone(),
        );
        r.register(
            "weir_sidecar_retry_not_replayable",
            "Requests not retryable because their body was too large to buffer",
            self.not_replayable.clone(),
        );
        r.register(
            "weir_sidecar_breaker_transitions",
            "Circuit breaker state changes by endpoint and new state",
            self.transitions.clone(),
        );
        r.register(
            "weir_sidecar_ejected_endpoints",
            "Endpoints currently ejected",
            self.ejected.clone(),
        );
        r.register(
            "weir_sidecar_endpoints",
            "Endpoints currently known per destination",
            self.endpoints.clone(),
        );
        r.register(
            "weir_sidecar_in_flight_requests",
            "Requests in flight by direction and destination",
            self.in_flight.clone(),
        );
        r.register(
            "weir_sidecar_inbound_rejected",
            "Inbound requests refused by the concurrency limit",
            self.rejected.clone(),
        );
        r.register(
            "weir_sidecar_stack_builds",
            "Outbound stacks built, by destination and stack (destination: once per \
             config change of its section; endpoint: once per endpoint joining the set)",
            self.stack_builds.clone(),
        );
        r.register(
            "weir_sidecar_transparent_connections",
            "Connections accepted in transparent mode, by detected protocol",
            self.connections.clone(),
        );
        self.mesh.register(r);
    }

    /// Pre-resolved request counters for one direction and destination.
    pub fn traffic(&self, direction: &'static str, destination: &str) -> TrafficMetrics {
        let by_class = CLASSES.map(|class| {
            self.requests
                .get_or_create(&RequestLabels {
                    direction,
                    destination: destination.to_owned(),
                    status_class: class,
                })
                .clone()
        });
        let labels = DirectionLabels {
            direction,
            destination: destination.to_owned(),
        };
        let family = self.grpc.clone();
        let scope = destination.to_owned();
        let grpc = GrpcStatusCounters::new(move |code| {
            family
                .get_or_create(&GrpcLabels {
                    direction,
                    destination: scope.clone(),
                    grpc_status: code.name(),
                })
                .clone()
        });
        TrafficMetrics {
            inner: Arc::new(TrafficInner {
                by_class,
                grpc,
                latency: self.latency.get_or_create(&labels).clone(),
                in_flight: self.in_flight.get_or_create(&labels).clone(),
            }),
        }
    }

    /// Records a retry decision of `destination`.
    pub fn retry_event(&self, destination: &str, ev: &RetryEvent) {
        let d = DestinationLabels {
            destination: destination.to_owned(),
        };
        match ev {
            RetryEvent::Retry { reason, .. } => {
                self.retries
                    .get_or_create(&RetryLabels {
                        destination: destination.to_owned(),
                        reason: reason.to_string(),
                    })
                    .inc();
            }
            RetryEvent::BudgetExhausted { .. } => {
                self.budget_exhausted.get_or_create(&d).inc();
            }
            RetryEvent::NotReplayable => {
                self.not_replayable.get_or_create(&d).inc();
            }
        }
    }

    /// Records a breaker transition and the destination's current ejections.
    pub fn breaker_transition(
        &self,
        destination: &str,
        endpoint: SocketAddr,
        to: BreakerState,
        ejected: usize,
    ) {
        self.transitions
            .get_or_create(&TransitionLabels {
                destination: destination.to_owned(),
                endpoint: endpoint.to_string(),
                to: to.as_str(),
            })
            .inc();
        self.set_ejected(destination, ejected);
    }

    /// Sets the ejected-endpoints gauge of `destination`.
    pub fn set_ejected(&self, destination: &str, ejected: usize) {
        self.ejected
            .get_or_create(&DestinationLabels {
                destination: destination.to_owned(),
            })
            .set(i64::try_from(ejected).unwrap_or(i64::MAX));
    }

    /// Sets the known-endpoints gauge of `destination`.
    pub fn set_endpoints(&self, destination: &str, n: usize) {
        self.endpoints
            .get_or_create(&DestinationLabels {
                destination: destination.to_owned(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts the construction of a `stack` (`destination` or `endpoint`) of
    /// `destination`: never on the request path, so it moves with reloads and
    /// endpoint changes only.
    pub fn stack_built(&self, destination: &str, stack: &'static str) {
        self.stack_builds
            .get_or_create(&StackBuildLabels {
                destination: destination.to_owned(),
                stack,
            })
            .inc();
    }

    /// Counts an inbound request refused by the concurrency limit.
    pub fn inbound_rejected(&self) {
        self.rejected.inc();
    }

    /// Counts a transparent-mode connection by detected protocol.
    pub fn connection(&self, protocol: &'static str) {
        self.connections
            .get_or_create(&ConnectionLabels { protocol })
            .inc();
    }
}

struct TrafficInner {
    by_class: [Counter; 5],
    grpc: GrpcStatusCounters,
    latency: Histogram,
    in_flight: Gauge,
}

/// The counters one direction/destination pair touches per request.
#[derive(Clone)]
pub struct TrafficMetrics {
    inner: Arc<TrafficInner>,
}

impl std::fmt::Debug for TrafficMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficMetrics").finish_non_exhaustive()
    }
}

impl TrafficMetrics {
    /// Marks a request as started; the guard decrements the in-flight gauge.
    pub fn start(&self) -> InFlightGuard {
        self.inner.in_flight.inc();
        InFlightGuard(self.inner.clone())
    }

    /// Records the outcome of a gRPC call.
    pub fn record_grpc(&self, code: proxy_core::grpc::Code) {
        self.inner.grpc.inc(code);
    }

    /// Records a finished request head.
    pub fn record(&self, status: u16, elapsed: Duration) {
        self.inner.by_class[status_class_index(status)].inc();
        self.inner.latency.observe(elapsed.as_secs_f64());
    }
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlightGuard(Arc<TrafficInner>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}
