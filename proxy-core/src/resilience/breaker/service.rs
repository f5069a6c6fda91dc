//! [`Breaker`]: one endpoint's service, feeding outcomes to its [`EndpointHealth`].
//!
//! A response counts as a failure when its status is 5xx or its `grpc-status`
//! (in the headers, or in the trailers of a gRPC body, observed when the body
//! ends) is `UNAVAILABLE`, `INTERNAL` or `DEADLINE_EXCEEDED`; an error counts as a
//! failure; a call dropped before its response (e.g. by a per-try timeout above)
//! also counts as a failure, so a hung endpoint is ejected too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{Admission, CircuitOpen, EndpointHealth};
use crate::resilience::BoxError;
use crate::resilience::classify;

/// Applies [`Breaker`] for one endpoint.
#[derive(Debug, Clone)]
pub struct BreakerLayer {
    health: Arc<EndpointHealth>,
}

impl BreakerLayer {
    /// Guards a service of the endpoint whose health is `health`
    /// (from [`OutlierDetector::endpoint`](super::OutlierDetector::endpoint)).
    pub fn new(health: Arc<EndpointHealth>) -> Self {
        BreakerLayer { health }
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker {
            inner,
            health: self.health.clone(),
        }
    }
}

/// One endpoint's service under outlier detection.
#[derive(Debug, Clone)]
pub struct Breaker<S> {
    inner: S,
    health: Arc<EndpointHealth>,
}

impl<S> Breaker<S> {
    /// The endpoint's health.
    pub fn health(&self) -> &Arc<EndpointHealth> {
        &self.health
    }
}

/// Records an outcome exactly once: explicitly, or as `on_drop` when dropped.
/// A call dropped before its outcome is known (the client went away) records
/// nothing: a cancelled request says nothing about the endpoint. Hung
/// endpoints are still caught, because the per-try timeout sits *below* the
/// breaker and fails the call with a `TimeoutError`.
struct Guard {
    health: Option<Arc<EndpointHealth>>,
    admission: Admission,
    on_drop: Option<bool>,
}

impl Guard {
    fn finish(&mut self, success: bool) {
        if let Some(h) = self.health.take() {
            h.record(self.admission, success);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        match self.on_drop {
            Some(success) => self.finish(success),
            None => {
                if let Some(h) = self.health.take() {
                    h.abandon(self.admission);
                }
            }
        }
    }
}

impl<S, Req, ResB> Service<Req> for Breaker<S>
where
    S: Service<Req, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<ObservedBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let admission = self.health.admit();
        if admission == Admission::Reject {
            return ResponseFuture {
                inner: None,
                guard: None,
            };
        }
        ResponseFuture {
            inner: Some(self.inner.call(req)),
            guard: Some(Guard {
                health: Some(self.health.clone()),
                admission,
                on_drop: None,
            }),
        }
    }
}

pin_project! {
    /// The future of [`Breaker`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        guard: Option<Guard>,
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ObservedBody<ResB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Err(Box::new(CircuitOpen::new())));
        };
        let result = match inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        let Some(mut guard) = this.guard.take() else {
            return Poll::Ready(Err("breaker future polled after completion".into()));
        };
        match result {
            Err(e) => {
                guard.finish(false);
                Poll::Ready(Err(e.into()))
            }
            Ok(resp) => {
                let verdict = head_verdict(&resp);
                let (parts, body) = resp.into_parts();
                let guard = match verdict {
                    Some(success) => {
                        guard.finish(success);
                        None
                    }
                    None => {
                        // gRPC without a status yet: the trailers decide; a body
                        // dropped early counts as a success (the head was fine).
                        guard.on_drop = Some(true);
                        Some(guard)
                    }
                };
                Poll::Ready(Ok(Response::from_parts(
                    parts,
                    ObservedBody { inner: body, guard },
                )))
            }
        }
    }
}

/// `Some(success)` when the head decides, `None` when gRPC trailers must.
fn head_verdict<B>(resp: &Response<B>) -> Option<bool> {
    if resp.status().is_server_error() {
        return Some(false);
    }
    if let Some(code) = classify::grpc_status(resp.headers()) {
        return Some(!classify::grpc_is_endpoint_failure(code));
    }
    if resp.status() == StatusCode::OK && classify::is_grpc(resp.headers()) {
        return None;
    }
    Some(true)
}

pin_project! {
    /// A response body whose gRPC trailers (or error) settle the endpoint's outcome.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        guard: Option<Guard>,
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Some(g) = this.guard.as_mut() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(code) = frame.trailers_ref().and_then(classify::grpc_status) {
                        g.finish(!classify::grpc_is_endpoint_failure(code));
                    }
                }
                Poll::Ready(Some(Err(_))) => g.finish(false),
                Poll::Ready(None) => g.finish(true),
                Poll::Pending => {}
            }
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> std::fmt::Debug for ObservedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedBody")
            .field("pending", &self.guard.is_some())
            .finish_non_exhaustive()
    }
}
