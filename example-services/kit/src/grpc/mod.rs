//! gRPC next to REST on one port.
//!
//! A service that offers gRPC serves it on the same listener as its REST
//! API: HTTP/1.1 and HTTP/2 (prior knowledge, what gRPC clients speak
//! without TLS) are told apart per connection, and requests per
//! `content-type`: `application/grpc…` goes to the gRPC routes (tonic's
//! generated services as an axum router), everything else to the REST
//! stack. One port means one sidecar inbound, one gateway upstream and one
//! set of probes per service.
//!
//! The gRPC routes get their own small stack instead of the REST one
//! (problem bodies, the JSON body limit, and route spans mean nothing to a
//! gRPC client): in request order a SERVER span named `{service}/{method}`
//! with the `rpc.*` attributes ([`span`]), then the caller's deadline
//! (`grpc-timeout`, [`deadline`]). Errors cross as statuses made from the
//! same problems the REST API answers with ([`status`]).

use axum::Router;
use axum::extract::Request;
use axum::middleware;
use http::HeaderMap;
use tower::ServiceExt as _;

use crate::telemetry::ServiceTelemetry;

pub mod client;
pub mod deadline;
pub mod span;
pub mod status;

pub use status::status_from_problem;

/// Whether a request is a gRPC call: `content-type` `application/grpc`,
/// optionally with a `+codec` suffix or parameters. gRPC-Web
/// (`application/grpc-web…`) is not: a proxy translates it first.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    match value.strip_prefix("application/grpc") {
        Some(rest) => rest.is_empty() || rest.starts_with('+') || rest.starts_with(';'),
        None => false,
    }
}

/// The gRPC routes with their stack: the SERVER span (when tracing is on)
/// around the deadline, around the services.
pub fn stack(routes: Router, telemetry: &ServiceTelemetry) -> Router {
    routes
        .layer(middleware::from_fn(deadline::enforce))
        .layer(middleware::from_fn_with_state(
            telemetry.clone(),
            span::server,
        ))
}

/// One router serving `grpc` for gRPC calls and `rest` for everything else.
pub fn with_rest(rest: Router, grpc: Router) -> Router {
    let dispatch = tower::service_fn(move |request: Request| {
        let target = if is_grpc(request.headers()) {
            grpc.clone()
        } else {
            rest.clone()
        };
        target.oneshot(request)
    });
    Router::new().fallback_service(dispatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
        headers
    }

    #[test]
    fn grpc_content_types_and_only_those() {
        assert!(is_grpc(&headers("application/grpc")));
        assert!(is_grpc(&headers("application/grpc+proto")));
        assert!(is_grpc(&headers("application/grpc;charset=utf-8")));
        assert!(!is_grpc(&headers("application/grpc-web")));
        assert!(!is_grpc(&headers("application/grpc-web-text+proto")));
        assert!(!is_grpc(&headers("application/json")));
        assert!(!is_grpc(&HeaderMap::new()));
    }
}
