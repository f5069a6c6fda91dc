//! [`Traced`]: one client span per try, at the top of an endpoint's stack so
//! the span names the endpoint and sees the breaker's and per-try timeout's
//! verdicts. The span, and the strings it needs, exist only when tracing is
//! on: otherwise the layer only converts the replayable body.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use proxy_core::balance::Endpoint;
use proxy_core::body::{self, Body, BoxError};
use proxy_core::resilience::{Attempt, EndpointHealth, ReplayBody};
use proxy_core::telemetry::{ActiveSpan, ClientSpanInfo, Telemetry};
use tower::{Layer, Service};

/// What every endpoint's [`Traced`] of one destination shares.
#[derive(Clone)]
pub(crate) struct TracedLayer {
    telemetry: Telemetry,
    destination: Arc<str>,
}

impl TracedLayer {
    pub(crate) fn new(telemetry: Telemetry, destination: Arc<str>) -> Self {
        TracedLayer {
            telemetry,
            destination,
        }
    }

    /// The layer for one endpoint (its address formatted once, here).
    pub(crate) fn for_endpoint(&self, endpoint: &Endpoint) -> EndpointTraced {
        EndpointTraced(Arc::new(TracedEndpoint {
            telemetry: self.telemetry.clone(),
            destination: self.destination.clone(),
            endpoint: endpoint.authority().as_str().into(),
            ejection: endpoint.ejection().clone(),
        }))
    }
}

/// What one endpoint's spans say, behind one `Arc` so that a try clones one
/// reference count.
struct TracedEndpoint {
    telemetry: Telemetry,
    destination: Arc<str>,
    endpoint: Arc<str>,
    /// The endpoint's breaker, for `weir.breaker.state`.
    ejection: Arc<EndpointHealth>,
}

/// [`TracedLayer`] bound to one endpoint.
#[derive(Clone)]
pub(crate) struct EndpointTraced(Arc<TracedEndpoint>);

impl<S> Layer<S> for EndpointTraced {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced {
            inner,
            endpoint: self.0.clone(),
        }
    }
}

/// Records one try of one endpoint as a client span.
#[derive(Clone)]
pub(crate) struct Traced<S> {
    inner: S,
    endpoint: Arc<TracedEndpoint>,
}

impl<S, ResB> Service<Request<ReplayBody<Body>>> for Traced<S>
where
    S: Service<Request<Body>, Response = Response<ResB>, Error = BoxError>,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = TracedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReplayBody<Body>>) -> Self::Future {
        let (mut parts, replay) = req.into_parts();
        let ep = &*self.endpoint;
        let telemetry = &ep.telemetry;
        let span = telemetry.is_enabled().then(|| {
            let attempt = parts.extensions.get::<Attempt>().copied();
            let reason = attempt.and_then(|a| a.reason).map(|r| r.to_string());
            let parent = telemetry.propagation().extract(&parts.headers);
            let mut span = telemetry.client_span(
                &parent,
                &mut parts,
                ClientSpanInfo {
                    attempt: attempt.map_or(1, |a| a.number),
                    retry_reason: reason.as_deref(),
                    upstream: Some(&ep.destination),
                    endpoint: Some(&ep.endpoint),
                },
            );
            span.set_breaker_state(ep.ejection.state().as_str());
            if proxy_core::grpc::is_grpc(&parts.headers)
                && let Some((service, method)) = proxy_core::grpc::service_method(parts.uri.path())
            {
                span.set_rpc(service, method);
            }
            span
        });
        TracedFuture {
            inner: self
                .inner
                .call(Request::from_parts(parts, body::boxed(replay))),
            span,
        }
    }
}

pin_project! {
    /// The future of [`Traced`]: ends the span with the try's outcome.
    pub(crate) struct TracedFuture<F> {
        #[pin]
        inner: F,
        span: Option<ActiveSpan>,
    }
}

impl<F, ResB> Future for TracedFuture<F>
where
    F: Future<Output = Result<Response<ResB>, BoxError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Some(span) = this.span.as_mut() {
            match &result {
                Ok(resp) => {
                    span.record_response(resp.status());
                    // A trailers-only answer says the call's outcome now; a
                    // streamed one says it in trailers the try does not wait
                    // for (the server span and the metrics read those).
                    if let Some(code) = proxy_core::grpc::status(resp.headers()) {
                        span.record_grpc_status(code, false);
                    }
                }
                Err(e) => span.record_error(proxy_core::problem::upstream_error_kind(&**e)),
            }
        }
        Poll::Ready(result)
    }
}
