//! [`Balance`]: the balancer as a tower service over prebuilt endpoint stacks.
//!
//! Each endpoint of an [`EndpointGroup`] gets its own service (its breaker,
//! per-try timeout and connection, say), built by a function given once, when
//! the endpoint joins the set. A call picks an endpoint with the group's policy
//! among those [available](Endpoint::is_available) and calls that endpoint's
//! service: nothing is built per request. The endpoint's load and latency
//! (what P2C-EWMA reads) are tracked around the call.
//!
//! The stacks follow the set: when discovery changes it, the next call builds
//! stacks for the new endpoints only and keeps the others (with their state).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use pin_project_lite::pin_project;
use tower::Service;

use super::{Endpoint, EndpointGroup, InFlight};
use crate::resilience::{BoxError, CircuitOpen};

/// No endpoint is known (empty DNS answer or empty list).
#[derive(Debug, thiserror::Error)]
#[error("{0} has no endpoints")]
pub struct NoEndpoints(pub String);

/// Builds the service of one endpoint.
pub type MakeEndpoint<S> = Box<dyn Fn(&Arc<Endpoint>) -> S + Send + Sync>;

/// The endpoint stacks, in the order of the endpoint set they were built for.
struct Stacks<S> {
    endpoints: Arc<Vec<Arc<Endpoint>>>,
    services: Vec<S>,
}

struct Shared<S> {
    group: Arc<EndpointGroup>,
    make: MakeEndpoint<S>,
    stacks: ArcSwap<Stacks<S>>,
    /// Held only while stacks are rebuilt after the set changed.
    rebuild: Mutex<()>,
}

/// Picks an endpoint and calls its prebuilt service.
///
/// The endpoint services must always be ready (pools and breakers here are):
/// the balancer is ready when it can pick, and fails the call with
/// [`CircuitOpen`] when every endpoint is ejected or [`NoEndpoints`] when the
/// set is empty.
pub struct Balance<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for Balance<S> {
    fn clone(&self) -> Self {
        Balance {
            shared: self.shared.clone(),
        }
    }
}

impl<S: Clone> Balance<S> {
    /// A balancer over `group`, building one endpoint's service with `make`
    /// (now for the current endpoints, later for endpoints that join).
    pub fn new(group: Arc<EndpointGroup>, make: MakeEndpoint<S>) -> Self {
        let endpoints = group.endpoints().clone();
        let services = endpoints.iter().map(&make).collect();
        Balance {
            shared: Arc::new(Shared {
                group,
                make,
                stacks: ArcSwap::from_pointee(Stacks {
                    endpoints,
                    services,
                }),
                rebuild: Mutex::new(()),
            }),
        }
    }

    /// The stacks for the group's current set, building what is missing.
    fn current(&self) -> arc_swap::Guard<Arc<Stacks<S>>> {
        let stacks = self.shared.stacks.load();
        let endpoints = self.shared.group.endpoints();
        if Arc::ptr_eq(&stacks.endpoints, &endpoints) {
            return stacks;
        }
        drop(stacks);
        self.resync(&endpoints);
        self.shared.stacks.load()
    }

    fn resync(&self, endpoints: &Arc<Vec<Arc<Endpoint>>>) {
        let _g = self
            .shared
            .rebuild
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let old = self.shared.stacks.load_full();
        if Arc::ptr_eq(&old.endpoints, endpoints) {
            return;
        }
        let services = endpoints
            .iter()
            .map(
                |ep| match old.endpoints.iter().position(|o| Arc::ptr_eq(o, ep)) {
                    Some(i) => old.services[i].clone(),
                    None => (self.shared.make)(ep),
                },
            )
            .collect();
        self.shared.stacks.store(Arc::new(Stacks {
            endpoints: endpoints.clone(),
            services,
        }));
    }
}

impl<S, Req> Service<Req> for Balance<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let stacks = self.current();
        let picked = self
            .shared
            .group
            .picker()
            .pick_index(&stacks.endpoints, Endpoint::is_available);
        let Some(i) = picked else {
            let err: BoxError = if stacks.endpoints.is_empty() {
                NoEndpoints(self.shared.group.name().to_owned()).into()
            } else {
                CircuitOpen::new().into()
            };
            return ResponseFuture {
                inner: None,
                error: Some(err),
                in_flight: None,
            };
        };
        let in_flight = stacks.endpoints[i].start();
        // A clone shares the endpoint's state (reference counts only): `call`
        // needs `&mut` while the stack is shared by every request.
        let mut svc = stacks.services[i].clone();
        ResponseFuture {
            inner: Some(svc.call(req)),
            error: None,
            in_flight: Some(in_flight),
        }
    }
}

pin_project! {
    /// The future of [`Balance`]: the endpoint's call, with its load counted.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        error: Option<BoxError>,
        in_flight: Option<InFlight>,
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            let err = this
                .error
                .take()
                .unwrap_or_else(|| "balancer future polled after completion".into());
            return Poll::Ready(Err(err));
        };
        let result = match inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        match result {
            Ok(resp) => {
                // The head arrived: a latency sample for the EWMA.
                if let Some(f) = this.in_flight.take() {
                    f.finish();
                }
                Poll::Ready(Ok(resp))
            }
            Err(e) => {
                // Failures end the request without a latency sample.
                this.in_flight.take();
                Poll::Ready(Err(e.into()))
            }
        }
    }
}

#[cfg(test)]
mod tests;
