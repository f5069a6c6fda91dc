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
