//! The SERVER span of a gRPC call, with the OpenTelemetry `rpc.*` attributes.
//!
//! A gRPC call's outcome is not its HTTP status (always 200) but its
//! `grpc-status`, which arrives in the trailers after the last message, or
//! in the headers when the call failed before any (a trailers-only
//! response). The span therefore lives as long as the response body: it
//! records `rpc.grpc.status_code` from whichever carries the status, and
//! ends then. A body dropped before its status (the client cancelled, the
//! connection broke) ends the span as `CANCELLED`. While the body is
//! polled the span is the current context, so the queries of a streaming
//! call are its children like those of a unary one.
//!
//! Health checks and reflection (`/grpc.*`) are not traced, like `/healthz`:
//! probes every few seconds would bury the traces that matter.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use opentelemetry::KeyValue;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::SpanKind;
use tonic::Code;

use crate::telemetry::{ActiveSpan, ServiceTelemetry};

/// `rpc.system` of every gRPC span.
pub const RPC_SYSTEM: &str = "grpc";

/// The service and method of a gRPC path, `/pkg.Service/Method`.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The `rpc.*` attributes naming a call.
pub fn attributes(service: &str, method: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("rpc.system", RPC_SYSTEM),
        KeyValue::new("rpc.service", service.to_owned()),
        KeyValue::new("rpc.method", method.to_owned()),
    ]
}

/// The codes OpenTelemetry counts as a server-side error, as the proxies
/// judge them.
fn server_error(code: Code) -> bool {
    proxy_core::grpc::Code::from_u32(i32::from(code) as u32).is_server_error()
}

/// Records a call's final status on its span.
pub fn record_status(span: &mut ActiveSpan, code: Code, server: bool) {
    span.set(KeyValue::new(
        "rpc.grpc.status_code",
        i64::from(i32::from(code)),
    ));
    let error = if server {
        server_error(code)
    } else {
        code != Code::Ok
    };
    if error {
        span.record_error(&format!("{code:?}"));
    }
}

/// The `grpc-status` in a header map, when there is one.
pub fn status_code(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    value.parse::<i32>().ok().map(Code::from_i32)
}

/// Middleware: the SERVER span of a gRPC call (see the module docs).
pub async fn server(
    State(telemetry): State<ServiceTelemetry>,
    request: Request,
    next: Next,
) -> Response {
    let t = telemetry.telemetry();
    let path = request.uri().path();
    let named = split_path(path).filter(|(service, _)| !service.starts_with("grpc."));
    let (Some((service, method)), true) = (named, t.is_enabled()) else {
        return next.run(request).await;
    };
    let parent = t.propagation().extract(request.headers());
    let span = t.child_span(
        &parent,
        format!("{service}/{method}"),
        SpanKind::Server,
        attributes(service, method),
    );
    let cx = span.context().clone();
    let response = next.run(request).with_context(cx).await;
    let (parts, body) = response.into_parts();
    let mut traced = SpanBody {
        inner: body,
        span: Some(span),
    };
    if let Some(code) = status_code(&parts.headers) {
        traced.finish(code);
    }
    Response::from_parts(parts, Body::new(traced))
}

/// A response body that ends its call's span with the call's status.
struct SpanBody {
    inner: Body,
    span: Option<ActiveSpan>,
}

impl SpanBody {
    fn finish(&mut self, code: Code) {
        if let Some(mut span) = self.span.take() {
            record_status(&mut span, code, true);
        }
    }
}

impl Drop for SpanBody {
    fn drop(&mut self) {
        // Dropped before a status was seen: the client went away.
        self.finish(Code::Cancelled);
    }
}

impl http_body::Body for SpanBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let _current = this
            .span
            .as_ref()
            .map(|span| span.context().clone().attach());
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_code) {
                    this.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(Code::Internal),
            // The end without a status: the gRPC spec's reading is UNKNOWN.
            Poll::Ready(None) => this.finish(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_service_and_method() {
        assert_eq!(
            split_path("/weir.catalog.v1.CatalogService/GetProduct"),
            Some(("weir.catalog.v1.CatalogService", "GetProduct"))
        );
        assert_eq!(split_path("/v1/products/1"), None);
        assert_eq!(split_path("/only"), None);
        assert_eq!(split_path("//Method"), None);
    }

    #[test]
    fn reads_the_status_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(status_code(&headers), None);
        headers.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(status_code(&headers), Some(Code::NotFound));
    }
}
