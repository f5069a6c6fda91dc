//! The problem+json responses the sidecar generates itself (RFC 9457), one
//! stable `type` per failure, each carrying the request id. Rendering, and the
//! mapping of a stack error to its problem, are `proxy_core::problem`'s; this
//! file names the failures only the sidecar has.

use std::error::Error as StdError;

use http::{HeaderMap, HeaderValue, Response, StatusCode};
use proxy_core::body::Body;
use proxy_core::problem::{self, Problem};
use proxy_core::resilience::{ErrorClass, classify_error};

/// A header map holding only the request id: what the problem builders read,
/// built on the error path only so the happy path copies no headers.
pub(crate) fn id_headers(id: &HeaderValue) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(1);
    h.insert(proxy_core::forward::REQUEST_ID, id.clone());
    h
}

/// The problem response for a failed outbound call to `destination`.
pub(crate) fn outbound_error(
    destination: &str,
    err: &(dyn StdError + 'static),
    req_headers: &HeaderMap,
) -> Response<Body> {
    problem::upstream_error(destination, err)
        .request_id_from(req_headers)
        .into_response()
}

/// `404` for a `Host` the sidecar knows no destination for.
pub(crate) fn unknown_destination(host: &str, req_headers: &HeaderMap) -> Response<Body> {
    Problem::new(
        StatusCode::NOT_FOUND,
        "unknown-destination",
        "Unknown destination",
    )
    .detail(format!(
        "no service named {host:?} is configured in this sidecar"
    ))
    .request_id_from(req_headers)
    .into_response()
}

/// `400` for a request without any `Host`.
pub(crate) fn missing_host(req_headers: &HeaderMap) -> Response<Body> {
    Problem::new(StatusCode::BAD_REQUEST, "missing-host", "Missing Host")
        .detail("the request names no destination (no Host header or absolute URI)")
        .request_id_from(req_headers)
        .into_response()
}

/// `405` for `CONNECT` tunnels, which the sidecar does not open.
pub(crate) fn connect_unsupported(req_headers: &HeaderMap) -> Response<Body> {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "connect-unsupported", "CONNECT not supported")
        .detail("the sidecar proxies plain HTTP by service name; use transparent mode for other TCP traffic")
        .request_id_from(req_headers)
        .into_response()
}

/// `403` for a caller the inbound authorization policy does not allow. It
/// names neither the rule nor the identities involved: a caller learns only
/// that it may not make this request.
pub(crate) fn forbidden(req_headers: &HeaderMap) -> Response<Body> {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
        .detail("the caller is not allowed to make this request")
        .request_id_from(req_headers)
        .into_response()
}

/// `503` when the inbound concurrency limit is reached.
pub(crate) fn overloaded(limit: usize, req_headers: &HeaderMap) -> Response<Body> {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "Too many concurrent requests",
    )
    .detail(format!(
        "the service already has {limit} requests in flight"
    ))
    .extension("limit", limit)
    .header(http::header::RETRY_AFTER, HeaderValue::from_static("1"))
    .request_id_from(req_headers)
    .into_response()
}

/// The problem for a failed inbound forward to the local app.
pub(crate) fn inbound_error(
    err: &(dyn StdError + 'static),
    req_headers: &HeaderMap,
) -> Response<Body> {
    let (status, slug, title) = match classify_error(err) {
        ErrorClass::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            "app-timeout",
            "Application timed out",
        ),
        ErrorClass::Connect => (
            StatusCode::BAD_GATEWAY,
            "app-unavailable",
            "Application unavailable",
        ),
        _ => (StatusCode::BAD_GATEWAY, "app-error", "Application error"),
    };
    Problem::new(status, slug, title)
        .detail(problem::error_chain(err))
        .request_id_from(req_headers)
        .into_response()
}
