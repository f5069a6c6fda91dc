//! Phase 4, send: one exchange with the chosen endpoint.
//!
//! The route's timeout is proxy-core's [`Timeout`] (the deadline covers the
//! response head; a streaming body is not cut off by it) and answers `504`
//! (`DEADLINE_EXCEEDED` to a gRPC client). A gRPC call's own `grpc-timeout`
//! is the deadline when it is shorter; when the route's is shorter, the
//! upstream is sent that one instead, so it stops when the gateway does.
//! A refused connection ejects the endpoint for a while and answers `502`.
//! A failure of the client's own body while it streams up is the client's:
//! `413` past the limit, `400` when malformed, never `502`. A `101` answer
//! joins client and upstream in a tunnel.

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use proxy_core::body::{self as pbody, Body};
use proxy_core::forward::{self, ForwardError, UpstreamClient, strip_hop_by_hop};
use proxy_core::resilience::{Timeout, TimeoutError, TimeoutKind};
use proxy_core::telemetry::{ClientSpanInfo, Telemetry};
use tower::{Service, ServiceExt};

use super::Ctx;
use super::upstream::{Outgoing, count_upstream_error};
use crate::metrics::GatewayMetrics;

/// Sends the request and returns the upstream's response, or the problem
/// document that stands for it.
pub(super) async fn send<'s>(
    metrics: &GatewayMetrics,
    telemetry: &Telemetry,
    outgoing: Outgoing<'s>,
    ctx: &mut Ctx<'s>,
) -> Response<Body> {
    let Outgoing {
        mut req,
        upstream,
        endpoint,
        client_upgrade,
        body_limit,
        body_outcome,
    } = outgoing;
    let endpoint_label = endpoint.authority().as_str();
    let mut client_span = telemetry.client_span(
        ctx.span.context(),
        &mut req,
        ClientSpanInfo {
            attempt: 1,
            retry_reason: None,
            upstream: Some(&upstream.name),
            endpoint: Some(endpoint_label),
        },
    );
    if ctx.grpc.is_some()
        && let Some((service, method)) = proxy_core::grpc::service_method(req.uri().path())
    {
        client_span.set_rpc(service, method);
    }
    let route_timeout = ctx.route.and_then(|r| r.timeout());
    // A gRPC client's `grpc-timeout` is honoured, capped by the route's.
    let timeout = match ctx.grpc {
        Some(_) => proxy_core::grpc::timeout::cap(req.headers_mut(), route_timeout),
        None => route_timeout,
    };

    let in_flight = endpoint.start();
    let result = exchange(
        &upstream.client,
        endpoint.authority(),
        req,
        timeout,
        body_limit,
    )
    .await;
    let mut resp = match result {
        Ok(r) => r,
        Err(err) => {
            drop(in_flight);
            // An HTTP/2 upstream client saw only the reset its own side sent
            // when the client's body failed.
            let err = match body_outcome.as_ref().and_then(|o| o.failure(body_limit)) {
                Some(client_fault) if !err.is_client_fault() && !err.is_connect() => client_fault,
                _ => err,
            };
            if err.is_connect() {
                let d = endpoint.record_failure();
                tracing::warn!(upstream = &*upstream.name, endpoint = %endpoint.addr, ejected_for = ?d, "connection refused; endpoint ejected");
            }
            // A client's own body failing says nothing about the upstream.
            if !err.is_client_fault() {
                count_upstream_error(metrics, &upstream.name, err.kind());
            }
            client_span.record_error(err.kind());
            ctx.endpoint = Some(endpoint);
            return ctx.problem(err.to_problem());
        }
    };
    in_flight.finish();
    endpoint.mark_success();
    client_span.record_response(resp.status());
    if let Some(code) = proxy_core::grpc::status(resp.headers()) {
        // A trailers-only answer; streamed outcomes are on the server span.
        client_span.record_grpc_status(code, false);
    }
    drop(client_span);
    ctx.endpoint = Some(endpoint);

    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        let Some(client) = client_upgrade else {
            return ctx.problem(
                ForwardError::InvalidRequest("upstream switched protocols unasked".into())
                    .to_problem(),
            );
        };
        forward::tunnel_upgrade(client, hyper::upgrade::on(&mut resp));
    }
    strip_hop_by_hop(resp.headers_mut(), switching);
    resp.map(pbody::boxed)
}

/// The exchange itself, under the route's deadline when it has one. Errors
/// are classified (connect, upstream, client body) where they happen, so
/// the deadline only adds its own.
async fn exchange(
    client: &UpstreamClient,
    endpoint: &Authority,
    req: Request<Body>,
    timeout: Option<Duration>,
    body_limit: u64,
) -> Result<Response<Incoming>, ForwardError> {
    let sent = async move {
        client
            .send_to(req, endpoint.clone())
            .await
            .map_err(|e| ForwardError::from_client(endpoint.to_string(), e, body_limit))
    };
    let Some(after) = timeout else {
        return sent.await;
    };
    Timeout::new(Once(Some(sent)), TimeoutKind::Overall, after)
        .oneshot(())
        .await
        .map_err(|e| match e.downcast::<ForwardError>() {
            Ok(forward) => *forward,
            Err(other) => ForwardError::Timeout(
                other
                    .downcast_ref::<TimeoutError>()
                    .map_or(after, TimeoutError::after),
            ),
        })
}

/// A future not yet polled, as a service called once, so the deadline
/// is the same [`Timeout`] the sidecar's stacks use. (A `service_fn` closure
/// borrowing the client does not pass the `Send` check of the handler's
/// future: its higher-ranked lifetimes are not general enough.)
struct Once<F>(Option<F>);

impl<F, T> Service<()> for Once<F>
where
    F: Future<Output = Result<T, ForwardError>>,
{
    type Response = T;
    type Error = ForwardError;
    type Future = F;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ForwardError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> F {
        self.0.take().expect("`oneshot` calls a service once")
    }
}
