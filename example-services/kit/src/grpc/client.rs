//! One gRPC call a service makes: the metadata it carries and its CLIENT span.
//!
//! Like [`crate::Outbound`] for REST calls, a call carries the request id
//! and trace context of the request that caused it; with tracing on it is
//! a CLIENT span (`{service}/{method}`, `rpc.*` attributes) whose context
//! the callee receives, and which records the call's final status.

use std::time::Duration;

use http::HeaderMap;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use tonic::Code;
use tonic::metadata::MetadataMap;

use super::span::{attributes, record_status, split_path};
use crate::telemetry::{ActiveSpan, ServiceTelemetry, TraceContext, propagation_headers};

/// The metadata marking a Weir proxy's own answer: the same header
/// (`proxy_core::problem::GENERATED_BY`) as on its problem responses.
pub const GENERATED_BY: &str = "x-weir-error";

/// A call being made (see the module docs).
#[derive(Debug)]
pub struct ClientCall {
    headers: HeaderMap,
    span: Option<ActiveSpan>,
}

impl ClientCall {
    /// Starts the call to `path` (`/pkg.Service/Method`) on `peer` (the
    /// logical name, for `server.address`), caused by a request with the
    /// headers `incoming`.
    pub fn start(
        telemetry: &ServiceTelemetry,
        incoming: &HeaderMap,
        path: &str,
        peer: &str,
    ) -> Self {
        let mut headers = propagation_headers(incoming);
        let t = telemetry.telemetry();
        let parent = TraceContext::current();
        let span = match split_path(path) {
            Some((service, method)) if t.is_enabled() && parent.has_active_span() => {
                let mut attrs = attributes(service, method);
                attrs.push(KeyValue::new("server.address", peer.to_owned()));
                let span = t.child_span(
                    &parent,
                    format!("{service}/{method}"),
                    SpanKind::Client,
                    attrs,
                );
                t.propagation().inject(span.context(), &mut headers);
                Some(span)
            }
            _ => None,
        };
        Self { headers, span }
    }

    /// The request to send: `message` with the call's metadata and the
    /// deadline `timeout` (sent as `grpc-timeout`, so every hop knows it).
    pub fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = MetadataMap::from_headers(self.headers.clone());
        request.set_timeout(timeout);
        request
    }

    /// Ends the call's span with its final status.
    pub fn finish(mut self, code: Code) {
        if let Some(mut span) = self.span.take() {
            record_status(&mut span, code, false);
        }
    }
}

/// Turns an answer that is not the callee's own into `UNAVAILABLE` marked
/// with `x-weir-error`, for a client stack (`tower::util::MapResponse`).
///
/// A Weir proxy on the way (the caller's sidecar, the callee's) answers for
/// itself when it cannot deliver, marked `x-weir-error`, and until it speaks
/// gRPC it answers in problem+json, which a gRPC client reads as a bare
/// HTTP status (`404` becomes `UNIMPLEMENTED`). Either way the callee's
/// outcome is unknown, never a refusal: the caller must be able to tell,
/// and [`generated_by_proxy`] then says so.
pub fn mark_proxy_answers(
    response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let generated = response
        .headers()
        .get(proxy_core::problem::GENERATED_BY)
        .cloned();
    if generated.is_none() && super::is_grpc(response.headers()) {
        return response;
    }
    let kind = generated.unwrap_or_else(|| http::HeaderValue::from_static("not-grpc"));
    let mut status = tonic::Status::unavailable(format!(
        "a proxy answered HTTP {} ({}) instead of the service",
        response.status().as_u16(),
        kind.to_str().unwrap_or("unknown")
    ));
    if let Ok(value) = tonic::metadata::MetadataValue::try_from(kind.as_bytes()) {
        status.metadata_mut().insert(GENERATED_BY, value);
    }
    status.into_http()
}

/// The kind of error a Weir proxy on the way answered with instead of the
/// callee (see [`mark_proxy_answers`]).
pub fn generated_by_proxy(status: &tonic::Status) -> Option<&str> {
    status
        .metadata()
        .get(GENERATED_BY)
        .map(|v| v.to_str().unwrap_or("unknown"))
}

/// Whether a status is the callee's definite answer, like a REST `2xx` or
/// `4xx` (except `408`/`429`): the caller may act on it. Anything else
/// (unavailable, deadline exceeded, internal trouble, a proxy's answer)
/// leaves the outcome unknown, and an idempotent call may be made again.
pub fn is_definite(status: &tonic::Status) -> bool {
    generated_by_proxy(status).is_none()
        && matches!(
            status.code(),
            Code::Ok
                | Code::InvalidArgument
                | Code::NotFound
                | Code::AlreadyExists
                | Code::PermissionDenied
                | Code::Unauthenticated
                | Code::FailedPrecondition
                | Code::OutOfRange
        )
}
