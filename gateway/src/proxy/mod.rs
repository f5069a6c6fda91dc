//! The request path: five phases, one file each, called in order by
//! [`GatewayHandler::serve`] (Pingora's `ProxyHttp` phases are the model).
//!
//! ```text
//!  client request
//!       │
//!  admit     hop-by-hop headers of the client removed, request id, server
//!       │    span, one authority (400), dot segments (400), route lookup
//!       │    (404/405/410, bad API version 400), body limit (413 up front)
//!  policy    forged identity headers removed, CORS, authentication, rate
//!       │    limits (401/403/429)
//!  upstream  weighted split, endpoint choice (503), path rewrite,
//!       │    X-Forwarded-*, route request headers, Host
//!  send      client span, route timeout (504), connect failure → ejection
//!       │    (502), client body failure (400/413), protocol upgrade tunnel
//!  respond   a refusal in gRPC terms for a gRPC client, route and policy
//!            response headers, deprecation, request id, span status
//!            (`rpc.grpc.status_code`), metrics, access log
//! ```
//!
//! A phase either hands the request to the next or answers it:
//! `ControlFlow::Break(response)` skips what is left and goes to `respond`,
//! which every response passes through. What a phase learns that a later one
//! or the access log needs lives in the per-request [`Ctx`].
//!
//! Header writes happen in one direction: the client's hop-by-hop headers
//! (and every name its `Connection` header lists) are removed in `admit`
//! before the gateway adds anything; after that nothing the gateway added is
//! removed, and request trailers are dropped (see
//! [`ClientBody`](proxy_core::forward::ClientBody)). So no client input can
//! remove or replace the request id, the identity headers or `X-Forwarded-*`.
//!
//! The snapshot is loaded once at the start and used to the end: a reload
//! never changes the rules under a request in flight.

mod admit;
mod authority;
mod policy;
mod respond;
mod send;
mod upstream;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use proxy_core::balance::Endpoint;
use proxy_core::body::Body;
use proxy_core::grpc::Protocol;
use proxy_core::problem::Problem;
use proxy_core::server::RequestBody;
use proxy_core::server::{ConnInfo, Handler};
use proxy_core::telemetry::{ActiveSpan, Telemetry};
use tokio::time::Instant;

use crate::metrics::GatewayMetrics;
use crate::routing::Route;
use crate::snapshot::Snapshot;
use crate::upstream::Upstream;

/// The gateway's request handler: cheap to clone, one per request.
#[derive(Clone)]
pub struct GatewayHandler {
    pub(crate) state: Arc<ArcSwap<Snapshot>>,
    pub(crate) metrics: Arc<GatewayMetrics>,
    pub(crate) telemetry: Arc<Telemetry>,
}

impl Handler for GatewayHandler {
    async fn handle(self, req: Request<RequestBody>, conn: Arc<ConnInfo>) -> Response<Body> {
        self.serve(req, conn).await
    }
}

/// What one phase hands the next, or the response that ends the path early.
type Flow<T> = ControlFlow<Response<Body>, T>;

/// What the phases learn about one request, for the phases after them and
/// for the access line. Borrows the snapshot; holds nothing after the
/// response head is built except what the access line needs.
pub(crate) struct Ctx<'s> {
    started: Instant,
    /// The id the upstream, the response and the logs carry.
    request_id: HeaderValue,
    span: ActiveSpan,
    /// Method and path for the access line; `None` when access logs are off.
    log: Option<(Method, String)>,
    /// Request body bytes, counted only when an access line will be written.
    bytes_in: Option<Arc<AtomicU64>>,
    /// The route that took the request (also for metrics and logs).
    route: Option<&'s Route>,
    /// Whether the route's response headers (rewrites, deprecation) go on
    /// the response: not for a CORS preflight answered for another method.
    route_headers: bool,
    upstream: Option<&'s Upstream>,
    endpoint: Option<Arc<Endpoint>>,
    /// The authenticated consumer, for the access line.
    consumer: Option<String>,
    /// Rate-limit and CORS headers the policies add to the response.
    policy_headers: Option<HeaderMap>,
    /// The client speaks gRPC (or gRPC-Web): the gateway's own refusals are
    /// answered trailers-only, and the outcome is read from `grpc-status`.
    grpc: Option<Protocol>,
    /// The client speaks `application/grpc-web-text`: its body is base64.
    grpc_web_text: bool,
}

impl<'s> Ctx<'s> {
    /// A problem document carrying this request's id.
    fn problem(&self, problem: Problem) -> Response<Body> {
        match self.request_id.to_str() {
            Ok(id) => problem.request_id(id),
            Err(_) => problem,
        }
        .grpc(self.grpc)
        .into_response()
    }
}

impl GatewayHandler {
    /// The phases, in order; every response leaves through `respond`.
    async fn serve(self, mut req: Request<RequestBody>, conn: Arc<ConnInfo>) -> Response<Body> {
        let snapshot = self.state.load_full();
        // A browser's gRPC-Web call goes through as gRPC, and back.
        let web = crate::grpc_web::accept(&mut req);
        let mut ctx = admit::begin(&self.telemetry, &mut req);
        ctx.grpc_web_text = web.as_ref().is_some_and(|w| w.text);
        let resp = match self.phases(&snapshot, req, &conn, &mut ctx).await {
            ControlFlow::Continue(resp) | ControlFlow::Break(resp) => resp,
        };
        let resp = respond::respond(&self.telemetry, &snapshot, ctx, resp, &conn);
        match &web {
            Some(web) => crate::grpc_web::respond(resp, web),
            None => resp,
        }
    }

    async fn phases<'s>(
        &self,
        snapshot: &'s Snapshot,
        req: Request<RequestBody>,
        conn: &ConnInfo,
        ctx: &mut Ctx<'s>,
    ) -> Flow<Response<Body>> {
        let routed = admit::route(snapshot, req, ctx)?;
        let routed = policy::check(snapshot, routed, conn, ctx).await?;
        let outgoing = upstream::prepare(&self.metrics, snapshot, routed, conn, ctx)?;
        ControlFlow::Continue(send::send(&self.metrics, &self.telemetry, outgoing, ctx).await)
    }
}
