//! Access-log lines written when the response has been sent, so they carry
//! the real body sizes and the full duration of streamed responses.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method};
use http_body::{Body as HttpBody, Frame, SizeHint};
use proxy_core::body::{Body, BoxError};
use proxy_core::telemetry::{AccessLogFormat, AccessRecord, TraceId};
use tokio::time::Instant;

pin_project_lite::pin_project! {
    /// Counts the data bytes of a body into a shared counter (the request
    /// body's size is only known once the upstream has read it).
    pub(crate) struct Counted<B> {
        #[pin]
        inner: B,
        counter: Arc<AtomicU64>,
    }
}

impl<B> Counted<B> {
    pub(crate) fn new(inner: B, counter: Arc<AtomicU64>) -> Self {
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
pub(crate) struct PendingLine {
    pub(crate) format: AccessLogFormat,
    pub(crate) started: Instant,
    pub(crate) request_id: HeaderValue,
    pub(crate) trace_id: Option<TraceId>,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) status: u16,
    pub(crate) client: SocketAddr,
    pub(crate) route: Option<Arc<str>>,
    pub(crate) upstream: Option<Arc<str>>,
    pub(crate) endpoint: Option<http::uri::Authority>,
    pub(crate) consumer: Option<String>,
    pub(crate) bytes_in: Option<Arc<AtomicU64>>,
}

impl PendingLine {
    fn emit(&self, bytes_out: u64) {
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
            bytes_in: self.bytes_in.as_ref().map(|c| c.load(Ordering::Relaxed)),
            bytes_out: Some(bytes_out),
        }
        .emit(self.format);
    }
}

pin_project_lite::pin_project! {
    /// The response body; writes the access line when it is dropped, which is
    /// when the last byte went out (or the client went away).
    pub(crate) struct Logged {
        #[pin]
        inner: Body,
        bytes_out: u64,
        line: Option<PendingLine>,
    }

    impl PinnedDrop for Logged {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(line) = this.line.take() {
                line.emit(*this.bytes_out);
            }
        }
    }
}

impl Logged {
    pub(crate) fn new(inner: Body, line: PendingLine) -> Self {
        Self {
            inner,
            bytes_out: 0,
            line: Some(line),
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
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            *this.bytes_out += data.len() as u64;
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
