//! One outbound destination (a logical service) and its resilience stack.
//!
//! [`build_stack`] assembles the stack once, when the config loads, top to
//! bottom in request order; it is the one place that order is written (the
//! docs draw this function):
//!
//! ```text
//! Timeout (overall)            timeouts.overall: the caller's whole wait
//! └ Retry + RetryBudget        retry: which failures, how often, bounded replay
//!   └ Balance (P2C-EWMA)       picks an available endpoint; none: CircuitOpen (503)
//!     └ per endpoint, built once when it joins the set:
//!       Traced                 one client span per try (when tracing is on)
//!       └ Breaker              records the endpoint's outcome, half-open probes
//!         └ Timeout (per try)  timeouts.per_try: a hung try fails with a
//!           │                  retryable 504 that the breaker counts
//!           └ SendTo           pooled h1/h2 connection to the endpoint,
//!                              mutual TLS when the sidecar has an identity
//!                              (`tls.mode` overrides)
//! ```
//!
//! The per-try timeout sits under the breaker on purpose: a try cut by it is
//! an endpoint failure, while a try dropped because the caller went away says
//! nothing about the endpoint and records no outcome.
//!
//! A request clones the stack's handles (reference counts) and calls it:
//! nothing is built per request. A destination outlives config reloads that
//! leave its section unchanged, so its pools, EWMA latencies, breaker states,
//! budget and stacks carry over.

mod send;
mod traced;

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::Incoming;
use proxy_core::balance::{Balance, Endpoint, EndpointGroup, MakeEndpoint};
use proxy_core::body::{Body, BoxError};
use proxy_core::forward::{ClientOptions, UpstreamClient};
use proxy_core::resilience::breaker::ObservedBody;
use proxy_core::resilience::{
    Breaker, BreakerLayer, PeekBody, Retry, RetryBudget, RetryLayer, Timeout, TimeoutKind,
    TimeoutLayer,
};
use proxy_core::telemetry::Telemetry;
use tower::{Service, ServiceBuilder};

use crate::config::ServiceSettings;
use crate::discovery::Discovery;
use crate::mesh::Mesh;
use crate::metrics::{SidecarMetrics, TrafficMetrics};

use self::send::SendTo;
use self::traced::{Traced, TracedLayer};

/// The response body of a destination's stack.
pub(crate) type StackBody = PeekBody<ObservedBody<Incoming>>;

/// One endpoint's part of the stack.
type EndpointStack = Traced<Breaker<Timeout<SendTo>>>;

/// The complete stack of one destination.
pub(crate) type Stack = Timeout<Retry<Balance<EndpointStack>>>;

/// The future of [`Stack`], spelled out.
pub(crate) type StackFuture = proxy_core::resilience::timeout::ResponseFuture<
    std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<StackBody>, BoxError>> + Send>,
    >,
>;

/// A destination: its settings, endpoints, breaker, budget, pool and stack.
pub(crate) struct Destination {
    /// The service name, shared by the stack, metrics and access lines.
    pub(crate) name: Arc<str>,
    pub(crate) settings: ServiceSettings,
    pub(crate) discovery: Discovery,
    pub(crate) budget: Arc<RetryBudget>,
    pub(crate) traffic: TrafficMetrics,
    stack: Stack,
}

impl Destination {
    /// Builds the destination (starting DNS refresh when it has `dns:` endpoints;
    /// must run inside a tokio runtime).
    pub(crate) fn new(
        settings: ServiceSettings,
        metrics: &SidecarMetrics,
        telemetry: &Telemetry,
        mesh: &Mesh,
    ) -> Arc<Destination> {
        let discovery = Discovery::new(&settings, metrics);
        let budget = Arc::new(RetryBudget::new(settings.budget));
        let name: Arc<str> = settings.name.as_str().into();
        let stack = build_stack(
            &name,
            &settings,
            discovery.group(),
            budget.clone(),
            metrics,
            telemetry,
            mesh,
        );
        Arc::new(Destination {
            name,
            traffic: metrics.traffic("outbound", &settings.name),
            settings,
            discovery,
            budget,
            stack,
        })
    }

    /// Sends `req` through the stack.
    ///
    /// Returns the stack's concrete future rather than being an `async fn`:
    /// awaiting `oneshot` inside an async block trips rustc's "implementation
    /// is not general enough" on the `dyn Error` lifetimes when the caller's
    /// future is checked for `Send`.
    pub(crate) fn call(&self, req: Request<Body>) -> StackFuture {
        let mut stack = self.stack.clone();
        // Every layer of the stack is always ready (Retry awaits readiness per
        // try inside its own future).
        let mut cx = Context::from_waker(std::task::Waker::noop());
        debug_assert!(matches!(stack.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        stack.call(req)
    }

    /// Whether `addr` is one of this destination's endpoints now.
    pub(crate) fn has_endpoint(&self, addr: SocketAddr) -> bool {
        self.discovery
            .group()
            .endpoints()
            .iter()
            .any(|e| e.addr == addr)
    }
}

/// The stack of one destination, in request order (see the module docs): the
/// layers are made top to bottom, then stacked in that order. Runs once per
/// destination when its config section is loaded; the per-endpoint closure
/// runs once per endpoint when it joins the set.
fn build_stack(
    name: &Arc<str>,
    settings: &ServiceSettings,
    group: &Arc<EndpointGroup>,
    budget: Arc<RetryBudget>,
    metrics: &SidecarMetrics,
    telemetry: &Telemetry,
    mesh: &Mesh,
) -> Stack {
    metrics.stack_built(name, "destination");
    let overall = TimeoutLayer::optional(TimeoutKind::Overall, settings.overall_timeout);
    let retry_metrics = metrics.clone();
    let retry_name = name.clone();
    let retry = RetryLayer::new(settings.retry.clone(), budget).with_hook(Arc::new(move |ev| {
        retry_metrics.retry_event(&retry_name, ev)
    }));
    // Balance: `group`'s policy (P2C-EWMA by default) over the stacks below.
    let traced = TracedLayer::new(telemetry.clone(), name.clone());
    // Breaker: the endpoint's own ejection state, `ep.ejection()`.
    let per_try = TimeoutLayer::optional(TimeoutKind::PerTry, settings.per_try_timeout);
    // Transport: mutual TLS to the destination's sidecars, or plaintext.
    let opts = ClientOptions {
        protocol: settings.protocol,
        connect_timeout: settings.connect_timeout,
        pool: settings.pool.clone(),
    };
    let tls = mesh.upstream_tls(&settings.tls, settings.protocol);
    metrics.mesh.destination_transport(name, tls.is_some());
    let client = Arc::new(match tls {
        Some(tls) => UpstreamClient::with_tls(&opts, tls),
        None => UpstreamClient::new(&opts),
    });

    let (endpoint_metrics, endpoint_name) = (metrics.clone(), name.clone());
    let endpoint: MakeEndpoint<EndpointStack> = Box::new(move |ep: &Arc<Endpoint>| {
        endpoint_metrics.stack_built(&endpoint_name, "endpoint");
        ServiceBuilder::new()
            .layer(traced.for_endpoint(ep))
            .layer(BreakerLayer::new(ep.ejection().clone()))
            .layer(per_try)
            .service(SendTo::new(client.clone(), ep))
    });
    ServiceBuilder::new()
        .layer(overall)
        .layer(retry)
        .service(Balance::new(group.clone(), endpoint))
}
