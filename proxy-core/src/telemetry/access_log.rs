//! One access-log line per request, with the request id and the trace id
//! side by side so a log line leads to its trace and back.
//!
//! Lines are `tracing` events with target `weir::access` at INFO; with
//! [`crate::telemetry::LogFormat::Json`] each is one JSON object whose fields
//! are flat (`request_id`, `trace_id`, `status`…).
//!
//! This is the one line format of the gateway and the sidecar (inbound and
//! outbound): a handler fills a [`PendingLine`] when the response head is
//! known and wraps the response body in [`Logged`], which writes the line when
//! the body has gone out, so the line carries the real body sizes and the full
//! duration of streamed responses. [`Counted`] counts the request body.
//!
//! A gRPC response's line also carries its `grpc-status` (from the headers of
//! a trailers-only response, or from the trailers as they pass), since its
//! HTTP status is 200 whether the call failed or not.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method};
use http_body::{Body as HttpBody, Frame, SizeHint};
use opentelemetry::trace::TraceId;
use tokio::time::Instant;

use super::config::AccessLogFormat;
use crate::body::{Body, BoxError};

/// What one access-log line says.
#[derive(Clone, Debug)]
pub struct AccessRecord<'a> {
    /// `x-request-id` of the request (generated when absent).
    pub request_id: &'a str,
    /// From [`crate::telemetry::ActiveSpan::trace_id`].
    pub trace_id: Option<TraceId>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration: Duration,
    pub client: Option<SocketAddr>,
    /// Route name from the config.
    pub route: Option<&'a str>,
    pub upstream: Option<&'a str>,
    /// The endpoint (`ip:port`) the balancer picked.
    pub endpoint: Option<&'a str>,
    /// API key consumer or JWT subject, when authenticated.
    pub consumer: Option<&'a str>,
    /// The caller's workload identity (sidecar inbound): a SPIFFE ID, or
    /// `none`/`plaintext` when it proved none.
    pub peer: Option<&'a str>,
    /// Request body bytes received from the client, when counted.
    pub bytes_in: Option<u64>,
    /// Response body bytes sent to the client, when counted.
    pub bytes_out: Option<u64>,
    /// The `grpc-status` of a gRPC response, when it had one.
    pub grpc_status: Option<u32>,
}

impl AccessRecord<'_> {
    /// Writes the line unless `format` is `off`.
    pub fn emit(&self, format: AccessLogFormat) {
        if format == AccessLogFormat::Off {
            return;
        }
        let trace_id = self.trace_id.map(|t| t.to_string());
        tracing::info!(
            target: "weir::access",
            request_id = self.request_id,
            trace_id = trace_id.as_deref().unwrap_or(""),
            method = self.method,
            path = self.path,
            status = self.status,
            duration_ms = self.duration.as_secs_f64() * 1000.0,
            client = self.client.map(|c| c.to_string()).as_deref().unwrap_or(""),
            route = self.route.unwrap_or(""),
            upstream = self.upstream.unwrap_or(""),
            endpoint = self.endpoint.unwrap_or(""),
            consumer = self.consumer.unwrap_or(""),
            peer = self.peer.unwrap_or(""),
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            grpc_status = self.grpc_status,
            "access"
        );
    }
}

pin_project_lite::pin_project! {
    /// Counts the data bytes of a body into a shared counter (the request
    /// body's size is only known once the upstream has read it).
    pub struct Counted<B> {
        #[pin]
        inner: B,
        counter: Arc<AtomicU64>,
    }
}

impl<B> Counted<B> {
    pub fn new(inner: B, counter: Arc<AtomicU64>) -> Self {
        Self { inner, counter }
    }
}

impl<B: HttpBody<Data = Bytes>> HttpBody for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Everything an access line says, owned, waiting for the response to end.
pub struct PendingLine {
    pub format: AccessLogFormat,
    pub started: Instant,
    pub request_id: HeaderValue,
    pub trace_id: Option<TraceId>,
    pub method: Method,
    pub path: String,
    pub status: u16,
    pub client: SocketAddr,
    pub route: Option<Arc<str>>,
    pub upstream: Option<Arc<str>>,
    pub endpoint: Option<http::uri::Authority>,
    pub consumer: Option<String>,
    pub peer: Option<Arc<str>>,
    pub bytes_in: Option<Arc<AtomicU64>>,
}

impl PendingLine {
    /// Wraps `resp`'s body so this line is written once the body has gone out
    /// (or the client went away), with the body's size and, for a gRPC
    /// response, its `grpc-status`.
    pub fn attach(self, resp: http::Response<Body>) -> http::Response<Body> {
        use http_body_util::BodyExt;
        let grpc = crate::grpc::is_any_grpc(resp.headers());
        let status = crate::grpc::status_number(resp.headers());
        resp.map(|body| {
            let mut logged = Logged::new(body, self);
            logged.watch_grpc = grpc && status.is_none();
            logged.grpc_status = status;
            logged.boxed_unsync()
        })
    }

    fn emit(&self, bytes_out: u64, grpc_status: Option<u32>) {
        AccessRecord {
            request_id: self.request_id.to_str().unwrap_or(""),
            trace_id: self.trace_id,
            method: self.method.as_str(),
            path: &self.path,
            status: self.status,
            duration: self.started.elapsed(),
            client: Some(self.client),
            route: self.route.as_deref(),
            upstream: self.upstream.as_deref(),
            endpoint: self.endpoint.as_ref().map(|a| a.as_str()),
            consumer: self.consumer.as_deref(),
            peer: self.peer.as_deref(),
            bytes_in: self.bytes_in.as_ref().map(|c| c.load(Ordering::Relaxed)),
            bytes_out: Some(bytes_out),
            grpc_status,
        }
        .emit(self.format);
    }
}

pin_project_lite::pin_project! {
    /// The response body; writes the access line when it is dropped, which is
    /// when the last byte went out (or the client went away).
    pub struct Logged {
        #[pin]
        inner: Body,
        bytes_out: u64,
        line: Option<PendingLine>,
        // Whether the trailers may still bring a `grpc-status`.
        watch_grpc: bool,
        grpc_status: Option<u32>,
    }

    impl PinnedDrop for Logged {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(line) = this.line.take() {
                line.emit(*this.bytes_out, *this.grpc_status);
            }
        }
    }
}

impl Logged {
    pub fn new(inner: Body, line: PendingLine) -> Self {
        Self {
            inner,
            bytes_out: 0,
            line: Some(line),
            watch_grpc: false,
            grpc_status: None,
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                *this.bytes_out += data.len() as u64;
            } else if *this.watch_grpc
                && let Some(trailers) = frame.trailers_ref()
            {
                *this.grpc_status = crate::grpc::status_number(trailers);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
