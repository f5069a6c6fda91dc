//! The spans the proxies create per request, named and attributed per the
//! OpenTelemetry HTTP semantic conventions plus our `weir.*` attributes.
//!
//! Hot-path rule: with tracing off these helpers allocate nothing and touch
//! no lock; the only work is looking for an incoming trace id so access logs
//! can still show it.

use std::borrow::Cow;

use http::{HeaderMap, Method, StatusCode, Uri};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, TraceId, Tracer};
use opentelemetry::{Context, KeyValue};

use super::init::Telemetry;

/// What span helpers need of a request: its head. Implemented for
/// `http::Request<B>` and `http::request::Parts`.
pub trait RequestHead {
    fn method(&self) -> &Method;
    fn uri(&self) -> &Uri;
    fn headers(&self) -> &HeaderMap;
    fn headers_mut(&mut self) -> &mut HeaderMap;
}

impl<B> RequestHead for http::Request<B> {
    fn method(&self) -> &Method {
        self.method()
    }
    fn uri(&self) -> &Uri {
        self.uri()
    }
    fn headers(&self) -> &HeaderMap {
        self.headers()
    }
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }
}

impl RequestHead for http::request::Parts {
    fn method(&self) -> &Method {
        &self.method
    }
    fn uri(&self) -> &Uri {
        &self.uri
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }
}

/// Names for a SERVER span, when known at its start (else see [`ActiveSpan::set_route`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerSpanInfo<'a> {
    /// The low-cardinality route template (`/v1/orders`, `/products/{id}`) → `http.route`.
    pub http_route: Option<&'a str>,
    /// Our route name from the config → `weir.route`.
    pub weir_route: Option<&'a str>,
}

/// Facts about one CLIENT attempt.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientSpanInfo<'a> {
    /// 1 for the first try, 2 for the first retry… → `weir.retry.attempt`.
    pub attempt: u32,
    /// Why this attempt is a retry (`503`, `connect_error`) → `weir.retry.reason`.
    pub retry_reason: Option<&'a str>,
    /// Logical destination (`payment`) → `weir.upstream`.
    pub upstream: Option<&'a str>,
    /// The endpoint picked by the balancer (`127.0.0.1:4243`) → `weir.endpoint`,
    /// and `server.address`/`server.port` when it parses as host:port.
    pub endpoint: Option<&'a str>,
}

/// A span in progress, plus the context children and outgoing headers need.
///
/// Ends when dropped (or at [`ActiveSpan::end`]); setters are no-ops when
/// tracing is off.
#[derive(Debug)]
pub struct ActiveSpan {
    /// Holds the span when recording; the caller's context otherwise.
    cx: Context,
    recording: bool,
    method: Method,
    /// Trace id seen in the request when tracing is off (for access logs).
    passthrough_trace_id: Option<TraceId>,
}

impl Telemetry {
    /// A SERVER span for an incoming request, child of the context in its
    /// headers (W3C, else B3), or the root of a new trace.
    pub fn server_span<R: RequestHead + ?Sized>(
        &self,
        req: &R,
        info: ServerSpanInfo<'_>,
    ) -> ActiveSpan {
        let Some(tracer) = self.tracer() else {
            return ActiveSpan::off(req.method(), incoming_trace_id(self, req.headers()));
        };
        let parent = self.propagation().extract(req.headers());
        let name = span_name(req.method(), info.http_route);
        let mut attrs = Vec::with_capacity(8);
        attrs.push(KeyValue::new(
            "http.request.method",
            method_str(req.method()),
        ));
        attrs.push(KeyValue::new("url.path", req.uri().path().to_owned()));
        if let Some(scheme) = req.uri().scheme_str() {
            attrs.push(KeyValue::new("url.scheme", scheme.to_owned()));
        }
        let authority = req.uri().authority().map(|a| a.as_str()).or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        });
        if let Some(authority) = authority {
            push_address(&mut attrs, authority);
        }
        if let Some(route) = info.http_route {
            attrs.push(KeyValue::new("http.route", route.to_owned()));
        }
        if let Some(route) = info.weir_route {
            attrs.push(KeyValue::new("weir.route", route.to_owned()));
        }
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attrs)
            .start_with_context(tracer, &parent);
        ActiveSpan::started(parent.with_span(span), req.method())
    }

    /// A CLIENT span for one attempt to an upstream, child of `parent`; its
    /// context is written into `req`'s headers (`traceparent`, `baggage`, B3
    /// when configured). With tracing off the headers are left as they are.
    pub fn client_span<R: RequestHead + ?Sized>(
        &self,
        parent: &Context,
        req: &mut R,
        info: ClientSpanInfo<'_>,
    ) -> ActiveSpan {
        let Some(tracer) = self.tracer() else {
            return ActiveSpan::off(req.method(), incoming_trace_id(self, req.headers()));
        };
        let mut attrs = Vec::with_capacity(10);
        attrs.push(KeyValue::new(
            "http.request.method",
            method_str(req.method()),
        ));
        attrs.push(KeyValue::new("url.path", req.uri().path().to_owned()));
        let address = info
            .endpoint
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        if let Some(address) = address {
            push_address(&mut attrs, address);
        }
        if let Some(upstream) = info.upstream {
            attrs.push(KeyValue::new("weir.upstream", upstream.to_owned()));
        }
        if let Some(endpoint) = info.endpoint {
            attrs.push(KeyValue::new("weir.endpoint", endpoint.to_owned()));
        }
        let attempt = info.attempt.max(1);
        attrs.push(KeyValue::new("weir.retry.attempt", i64::from(attempt)));
        if attempt > 1 {
            attrs.push(KeyValue::new(
                "http.request.resend_count",
                i64::from(attempt - 1),
            ));
        }
        if let Some(reason) = info.retry_reason {
            attrs.push(KeyValue::new("weir.retry.reason", reason.to_owned()));
        }
        let span = tracer
            .span_builder(span_name(req.method(), None))
            .with_kind(SpanKind::Client)
            .with_attributes(attrs)
            .start_with_context(tracer, parent);
        let cx = parent.with_span(span);
        self.propagation().inject(&cx, req.headers_mut());
        ActiveSpan::started(cx, req.method())
    }

    /// An INTERNAL (or other kind) span under `parent`, for work inside a hop:
    /// a handler step, a database query.
    pub fn child_span(
        &self,
        parent: &Context,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        attrs: Vec<KeyValue>,
    ) -> ActiveSpan {
        let Some(tracer) = self.tracer() else {
            return ActiveSpan::off(&Method::GET, None);
        };
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attrs)
            .start_with_context(tracer, parent);
        ActiveSpan::started(parent.with_span(span), &Method::GET)
    }
}

impl ActiveSpan {
    fn started(cx: Context, method: &Method) -> Self {
        let recording = cx.span().is_recording();
        Self {
            cx,
            recording,
            method: method.clone(),
            passthrough_trace_id: None,
        }
    }

    fn off(method: &Method, passthrough_trace_id: Option<TraceId>) -> Self {
        Self {
            cx: Context::new(),
            recording: false,
            method: method.clone(),
            passthrough_trace_id,
        }
    }

    /// The context holding this span: the parent for client spans and the
    /// thing to inject into outgoing requests.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// False when tracing is off or the trace was not sampled.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// The trace this span belongs to, for access logs (Display: 32 hex digits).
    /// With tracing off, the incoming request's trace id, if it carried one.
    pub fn trace_id(&self) -> Option<TraceId> {
        let sc = self.cx.span().span_context().clone();
        if sc.is_valid() {
            Some(sc.trace_id())
        } else {
            self.passthrough_trace_id
        }
    }

    /// Names the route once routing has matched (`http.route`, `weir.route`,
    /// span name `{method} {http_route}`).
    pub fn set_route(&mut self, http_route: &str, weir_route: &str) {
        if !self.recording {
            return;
        }
        let span = self.cx.span();
        span.update_name(span_name(&self.method, Some(http_route)));
        span.set_attribute(KeyValue::new("http.route", http_route.to_owned()));
        span.set_attribute(KeyValue::new("weir.route", weir_route.to_owned()));
    }

    /// `weir.upstream` on a server span, once the route has picked one.
    pub fn set_upstream(&mut self, upstream: &str) {
        self.set(KeyValue::new("weir.upstream", upstream.to_owned()));
    }

    /// `weir.peer.identity`: the caller's verified workload identity (a
    /// SPIFFE ID), or `none`/`plaintext` when it proved none.
    pub fn set_peer_identity(&mut self, peer: &str) {
        self.set(KeyValue::new("weir.peer.identity", peer.to_owned()));
    }

    /// `weir.breaker.state` (`closed`, `open`, `half_open`).
    pub fn set_breaker_state(&mut self, state: &'static str) {
        self.set(KeyValue::new("weir.breaker.state", state));
    }

    /// `weir.ratelimit.decision` (`allowed`, `limited`, `error_open`…).
    pub fn set_ratelimit_decision(&mut self, decision: &'static str) {
        self.set(KeyValue::new("weir.ratelimit.decision", decision));
    }

    /// Any other attribute.
    pub fn set(&mut self, kv: KeyValue) {
        if self.recording {
            self.cx.span().set_attribute(kv);
        }
    }

    /// `http.response.status_code`; a 5xx also sets `error.type` and status Error.
    pub fn record_response(&mut self, status: StatusCode) {
        if !self.recording {
            return;
        }
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        if status.is_server_error() {
            span.set_attribute(KeyValue::new("error.type", status.as_str().to_owned()));
            span.set_status(Status::error(status.to_string()));
        }
    }

    /// A failure without a response (`timeout`, `connect_error`,
    /// `circuit_open`…): `error.type` and status Error.
    pub fn record_error(&mut self, error_type: &str) {
        if !self.recording {
            return;
        }
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("error.type", error_type.to_owned()));
        span.set_status(Status::error(error_type.to_owned()));
    }

    /// Ends the span now (dropping does the same).
    pub fn end(self) {}
}

impl Drop for ActiveSpan {
    fn drop(&mut self) {
        if self.recording {
            self.cx.span().end();
        }
    }
}

/// The method as a static string (no allocation per span); semconv's
/// `_OTHER` for methods outside RFC 9110, so attributes stay bounded.
fn method_str(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// `{method}` or `{method} {route}`, the semconv span name (`HTTP` for an
/// unknown method).
fn span_name(method: &Method, route: Option<&str>) -> Cow<'static, str> {
    let m = match method_str(method) {
        "_OTHER" => "HTTP",
        m => m,
    };
    match route {
        Some(r) => Cow::Owned(format!("{m} {r}")),
        None => Cow::Borrowed(m),
    }
}

/// `server.address` and `server.port` from `host[:port]`.
fn push_address(attrs: &mut Vec<KeyValue>, authority: &str) {
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse::<u16>() {
            Ok(port) => (h, Some(port)),
            Err(_) => (authority, None),
        },
        _ => (authority, None),
    };
    attrs.push(KeyValue::new(
        "server.address",
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    ));
    if let Some(port) = port {
        attrs.push(KeyValue::new("server.port", i64::from(port)));
    }
}

/// With tracing off, the trace id the caller sent, for log correlation only.
fn incoming_trace_id(t: &Telemetry, headers: &HeaderMap) -> Option<TraceId> {
    if headers.contains_key("traceparent")
        || headers.contains_key("b3")
        || headers.contains_key("x-b3-traceid")
    {
        let sc = t
            .propagation()
            .extract(headers)
            .span()
            .span_context()
            .clone();
        sc.is_valid().then(|| sc.trace_id())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_names_are_low_cardinality() {
        assert_eq!(
            span_name(&Method::POST, Some("/v1/orders")),
            "POST /v1/orders"
        );
        assert_eq!(
            span_name(&Method::from_bytes(b"BREW").unwrap(), None),
            "HTTP"
        );
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        let mut v = Vec::new();
        push_address(&mut v, "127.0.0.1:4243");
        assert_eq!(
            v,
            [
                KeyValue::new("server.address", "127.0.0.1"),
                KeyValue::new("server.port", 4243i64)
            ]
        );
        let mut v = Vec::new();
        push_address(&mut v, "[::1]:80");
        assert_eq!(
            v,
            [
                KeyValue::new("server.address", "::1"),
                KeyValue::new("server.port", 80i64)
            ]
        );
        let mut v = Vec::new();
        push_address(&mut v, "example.com");
        assert_eq!(v, [KeyValue::new("server.address", "example.com")]);
    }

    #[test]
    fn tracing_off_still_reports_the_incoming_trace_id_and_leaves_headers_alone() {
        let t = Telemetry::disabled("gateway");
        let req = http::Request::builder()
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(())
            .unwrap();
        let span = t.server_span(&req, ServerSpanInfo::default());
        assert!(!span.is_recording());
        assert_eq!(
            span.trace_id().unwrap().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );

        let (mut parts, ()) = req.into_parts();
        let before = parts.headers.clone();
        let client = t.client_span(
            span.context(),
            &mut parts,
            ClientSpanInfo {
                attempt: 1,
                ..Default::default()
            },
        );
        assert_eq!(parts.headers, before);
        assert!(!client.is_recording());
    }
}
