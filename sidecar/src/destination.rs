//! One outbound destination (a logical service) and its resilience stack, in
//! request order:
//!
//! ```text
//! overall Timeout            (timeouts.overall: the caller's whole wait)
//!   → Retry + RetryBudget    (retry: which failures, how often, bounded replay)
//!     → Pick                 (balancer over endpoints the breaker lets through;
//!                             none left: CircuitOpen, a fast 503)
//!       → Breaker            (records the endpoint's outcome, half-open probes)
//!         → per-try Timeout  (timeouts.per_try: a hung try becomes a retryable
//!                             504 that the breaker counts as a failure)
//!           → UpstreamClient (pooled h1/h2 connection to the endpoint)
//! ```
//!
//! The per-try timeout sits under the breaker on purpose: a try cut by it is
//! an endpoint failure, while a try dropped because the caller went away says
//! nothing about the endpoint and records no outcome.
//!
//! A destination outlives config reloads that leave its section unchanged, so
//! its pools, EWMA latencies, breaker states and budget carry over.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use proxy_core::balance::EndpointGroup;
use proxy_core::body::{self, Body, BoxError};
use proxy_core::forward::{ClientOptions, UpstreamClient};
use proxy_core::resilience::breaker::ObservedBody;
use proxy_core::resilience::{
    Attempt, BreakerLayer, CircuitOpen, OutlierDetector, PeekBody, ReplayBody, Retry, RetryBudget,
    RetryLayer, Timeout, TimeoutKind, TimeoutLayer,
};
use proxy_core::telemetry::{ClientSpanInfo, Telemetry};
use tower::{Layer, Service};

use crate::config::ServiceSettings;
use crate::discovery::Discovery;
use crate::metrics::{SidecarMetrics, TrafficMetrics};

/// Used when a timeout is not configured: far enough to never fire.
const NO_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// The response body of a destination's stack.
pub(crate) type StackBody = PeekBody<ObservedBody<Incoming>>;

/// The complete stack of one destination.
pub(crate) type Stack = Timeout<Retry<Pick>>;

/// The future of [`Stack`], spelled out.
pub(crate) type StackFuture = proxy_core::resilience::timeout::ResponseFuture<
    std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<StackBody>, BoxError>> + Send>,
    >,
>;

/// No endpoint is known (empty DNS answer or empty list).
#[derive(Debug, thiserror::Error)]
#[error("destination {0} has no endpoints")]
pub(crate) struct NoEndpoints(pub(crate) String);

/// A destination: its settings, endpoints, breaker, budget, pool and stack.
pub(crate) struct Destination {
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
    ) -> Arc<Destination> {
        let discovery = Discovery::new(&settings, metrics);
        let budget = Arc::new(RetryBudget::new(settings.budget));
        let client = UpstreamClient::new(&ClientOptions {
            protocol: settings.protocol,
            connect_timeout: settings.connect_timeout,
            pool: settings.pool.clone(),
        });
        let pick = Pick {
            inner: Arc::new(PickInner {
                name: settings.name.clone(),
                group: discovery.group().clone(),
                detector: discovery.detector().clone(),
                client,
                telemetry: telemetry.clone(),
                per_try: settings.per_try_timeout.unwrap_or(NO_TIMEOUT),
            }),
        };
        let hook_metrics = metrics.clone();
        let hook_name = settings.name.clone();
        let retry = RetryLayer::new(settings.retry.clone(), budget.clone())
            .with_hook(Arc::new(move |ev| hook_metrics.retry_event(&hook_name, ev)));
        let overall = TimeoutLayer::new(
            TimeoutKind::Overall,
            settings.overall_timeout.unwrap_or(NO_TIMEOUT),
        );
        // The per-try timeout sits under each endpoint's breaker (see
        // `PickInner`), so a hung endpoint fails with a timeout the breaker
        // counts, while a caller going away records nothing.
        let stack = overall.layer(retry.layer(pick));
        Arc::new(Destination {
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

struct PickInner {
    name: String,
    group: Arc<EndpointGroup>,
    detector: Arc<OutlierDetector>,
    client: UpstreamClient,
    telemetry: Telemetry,
    /// Per-try timeout, applied under the endpoint's breaker.
    per_try: Duration,
}

/// Picks an endpoint the breaker lets through and sends one try to it.
#[derive(Clone)]
pub(crate) struct Pick {
    inner: Arc<PickInner>,
}

impl Service<Request<ReplayBody<Body>>> for Pick {
    type Response = Response<ObservedBody<Incoming>>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReplayBody<Body>>) -> Self::Future {
        // Everything up to the send happens here, synchronously: the async block
        // below only awaits concrete futures (see `Destination::call`).
        let inner = &self.inner;
        let detector = &inner.detector;
        let Some(endpoint) = inner
            .group
            .pick_where(|e| e.is_healthy() && detector.is_available(e.addr))
        else {
            let err: BoxError = if inner.group.endpoints().is_empty() {
                NoEndpoints(inner.name.clone()).into()
            } else {
                CircuitOpen::new().into()
            };
            return Box::pin(std::future::ready(Err(err)));
        };
        let addr = endpoint.addr;
        let (mut parts, body) = req.into_parts();
        // Spans (and the strings they need) only when tracing is on: the hot
        // path allocates nothing for telemetry otherwise.
        let mut span = inner.telemetry.is_enabled().then(|| {
            let attempt = parts.extensions.get::<Attempt>().copied();
            let reason = attempt.and_then(|a| a.reason).map(|r| r.to_string());
            let parent = inner.telemetry.propagation().extract(&parts.headers);
            let endpoint = addr.to_string();
            inner.telemetry.client_span(
                &parent,
                &mut parts,
                ClientSpanInfo {
                    attempt: attempt.map_or(1, |a| a.number),
                    retry_reason: reason.as_deref(),
                    upstream: Some(&inner.name),
                    endpoint: Some(&endpoint),
                },
            )
        });
        let req = Request::from_parts(parts, body::boxed(body));
        let in_flight = endpoint.start();
        let mut breaker = BreakerLayer::new(detector.endpoint(addr)).layer(
            TimeoutLayer::new(TimeoutKind::PerTry, inner.per_try).layer(SendTo {
                client: inner.client.clone(),
                addr,
            }),
        );
        let sent = breaker.call(req);
        Box::pin(async move {
            let result = sent.await;
            match &result {
                Ok(resp) => {
                    in_flight.finish();
                    if let Some(span) = &mut span {
                        span.record_response(resp.status());
                    }
                }
                Err(e) => {
                    drop(in_flight);
                    if let Some(span) = &mut span {
                        span.record_error(crate::problems::error_kind(&**e));
                    }
                }
            }
            result
        })
    }
}

/// One try to one endpoint over the destination's pool.
#[derive(Clone)]
struct SendTo {
    client: UpstreamClient,
    addr: SocketAddr,
}

impl Service<Request<Body>> for SendTo {
    type Response = Response<Incoming>;
    type Error = proxy_core::forward::ClientError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let client = self.client.clone();
        let addr = self.addr;
        Box::pin(async move { client.send(req, addr).await })
    }
}
