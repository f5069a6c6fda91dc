//! Phase 5, respond: every response leaves through here, whichever phase
//! produced it.
//!
//! The route's response headers (rewrites, deprecation and sunset) go on
//! every response of a matched route, then the policies' rate-limit and
//! CORS headers, then the request id. A gRPC client gets the gateway's own
//! refusals as trailers-only gRPC responses, and its call's `grpc-status`
//! (from the headers or the trailers) goes on the span, the metrics and the
//! access line. The span gets the status (and the
//! error type of a response Weir generated), the route's metrics the status
//! and duration, the route's slow-request ring (the dashboard's trace links)
//! a chance at the request, and the access line is written once the body has
//! gone out.

use http::Response;
use proxy_core::body::Body;
use proxy_core::forward::REQUEST_ID;
use proxy_core::server::ConnInfo;
use proxy_core::telemetry::Telemetry;

use super::Ctx;
use crate::snapshot::Snapshot;
use proxy_core::telemetry::access_log::PendingLine;

/// Finishes the response of one request.
pub(super) fn respond(
    telemetry: &Telemetry,
    snapshot: &Snapshot,
    ctx: Ctx<'_>,
    mut resp: Response<Body>,
    conn: &ConnInfo,
) -> Response<Body> {
    let Ctx {
        started,
        request_id,
        mut span,
        log,
        bytes_in,
        route,
        route_headers,
        upstream,
        endpoint,
        consumer,
        policy_headers,
        grpc,
        grpc_web_text: _,
    } = ctx;
    if let Some(protocol) = grpc {
        // The policies' rejections were rendered as problem+json.
        resp = proxy_core::grpc::answer_as_grpc(resp, protocol);
    }
    let headers = resp.headers_mut();
    if route_headers && let Some(route) = route {
        route.apply_response_headers(headers);
    }
    if let Some(added) = policy_headers {
        // Appended, never replacing what the upstream said.
        let mut name = None;
        for (next, value) in added {
            if next.is_some() {
                name = next;
            }
            if let Some(name) = &name {
                headers.append(name, value);
            }
        }
    }
    headers.insert(REQUEST_ID, request_id.clone());

    let status = resp.status();
    span.record_response(status);
    if let Some(slug) = resp
        .headers()
        .get(proxy_core::problem::GENERATED_BY)
        .and_then(|v| v.to_str().ok())
    {
        span.record_error(slug);
    }
    let elapsed = started.elapsed();
    let handles = route
        .and_then(|r| snapshot.route_metrics.get(r.index()))
        .unwrap_or(&snapshot.unmatched_metrics);
    handles.record(status.as_u16(), elapsed.as_secs_f64());
    if let Some(ring) = route.and_then(|r| snapshot.route_outliers.get(r.index())) {
        // One atomic compare unless this request is among the slowest.
        ring.offer(elapsed, || {
            (
                span.trace_id().map(|t| t.to_string()),
                request_id.to_str().ok().map(str::to_owned),
                status.as_u16(),
            )
        });
    }
    let trace_id = span.trace_id();
    if grpc.is_some() {
        // The call's outcome is in the trailers, after the last message: the
        // span stays open until then and takes it, and so do the metrics.
        let counters = handles.grpc.clone();
        resp = proxy_core::grpc::observe(resp, move |outcome| {
            span.record_grpc_status(outcome.code(), true);
            counters.inc(outcome.code());
        });
    } else {
        drop(span);
    }

    let Some((method, path)) = log else {
        return resp;
    };
    // The line is written when the response body has gone out, with its size.
    let line = PendingLine {
        format: telemetry.access_log(),
        started,
        request_id,
        trace_id,
        method,
        path,
        status: status.as_u16(),
        client: conn.remote,
        route: route.map(|r| r.name().clone()),
        upstream: upstream.map(|u| u.name.clone()),
        endpoint: endpoint.map(|e| e.authority().clone()),
        consumer,
        peer: None,
        bytes_in,
    };
    line.attach(resp)
}
