//! [`SendTo`]: the bottom of an endpoint's stack, one try over the
//! destination's connection pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use proxy_core::balance::Endpoint;
use proxy_core::body::Body;
use proxy_core::forward::UpstreamClient;
use tower::Service;

/// Sends to one endpoint; built once per endpoint, with the endpoint's
/// authority formatted once (not per request).
#[derive(Clone)]
pub(crate) struct SendTo {
    client: Arc<UpstreamClient>,
    authority: Authority,
}

impl SendTo {
    pub(crate) fn new(client: Arc<UpstreamClient>, endpoint: &Endpoint) -> Self {
        SendTo {
            client,
            authority: endpoint.authority().clone(),
        }
    }
}

impl Service<Request<Body>> for SendTo {
    type Response = Response<Incoming>;
    type Error = proxy_core::forward::ClientError;
    /// Boxed because the pool's `send_to` is an `async fn` borrowing the
    /// client: the one allocation per try the stack keeps.
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let client = self.client.clone();
        let authority = self.authority.clone();
        Box::pin(async move { client.send_to(req, authority).await })
    }
}
