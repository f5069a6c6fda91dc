//! The problem+json responses the sidecar generates itself (RFC 9457), one
//! stable `type` per failure, each carrying the request id.

use std::error::Error as StdError;

use http::{HeaderMap, HeaderValue, Response, StatusCode};
use proxy_core::body::Body;
use proxy_core::problem::Problem;
use proxy_core::resilience::retry::RetriesExhausted;
use proxy_core::resilience::{ATTEMPTS_HEADER, ErrorClass, TimeoutError, classify_error};

use proxy_core::balance::NoEndpoints;

/// A header map holding only the request id: what the problem builders read,
/// built on the error path only so the happy path copies no headers.
pub(crate) fn id_headers(id: &HeaderValue) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(1);
    h.insert(proxy_core::forward::REQUEST_ID, id.clone());
    h
}

/// A stable kind for an error of a destination stack: metrics, spans, logs and
/// the problem `type` slug.
pub(crate) fn error_kind(err: &(dyn StdError + 'static)) -> &'static str {
    if find::<NoEndpoints>(err).is_some() {
        return "no-endpoints";
    }
    match classify_error(err) {
        ErrorClass::CircuitOpen => "circuit-open",
        ErrorClass::Timeout => "upstream-timeout",
        ErrorClass::Connect => "upstream-connect-failed",
        ErrorClass::Other => "upstream-error",
    }
}

fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

/// The problem response for a failed outbound call to `destination`.
pub(crate) fn outbound_error(
    destination: &str,
    err: &(dyn StdError + 'static),
    req_headers: &HeaderMap,
) -> Response<Body> {
    let kind = error_kind(err);
    let (status, title, detail) = match kind {
        "no-endpoints" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "No endpoints",
            format!("destination {destination} has no endpoints"),
        ),
        "circuit-open" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Circuit open",
            format!("every endpoint of {destination} is ejected after failures; failing fast"),
        ),
        "upstream-timeout" => {
            let t = find::<TimeoutError>(err);
            (
                StatusCode::GATEWAY_TIMEOUT,
                "Upstream timed out",
                t.map_or_else(|| err.to_string(), |t| format!("{destination}: {t}")),
            )
        }
        "upstream-connect-failed" => (
            StatusCode::BAD_GATEWAY,
            "Upstream connection failed",
            format!("cannot connect to {destination}: {}", chain(err)),
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "Upstream error",
            format!("{destination}: {}", chain(err)),
        ),
    };
    let mut problem = Problem::new(status, kind, title)
        .detail(detail)
        .extension("destination", destination)
        .request_id_from(req_headers);
    if let Some(ex) = find::<RetriesExhausted>(err) {
        problem = problem.extension("attempts", ex.attempts).header(
            ATTEMPTS_HEADER.parse().expect("static header name"),
            HeaderValue::from(ex.attempts),
        );
    }
    problem.into_response()
}

/// Every message in an error's source chain, joined.
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
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
        .detail(chain(err))
        .request_id_from(req_headers)
        .into_response()
}
