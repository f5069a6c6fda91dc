//! Calls to other services, directly or through the sidecar's outbound proxy.
//!
//! In the mesh a service addresses its peers by logical name
//! (`http://catalog/v1/reservations`) and every connection goes to the local
//! sidecar's outbound address, which resolves the name, balances, retries and
//! breaks circuits. The request keeps the logical name in its `Host` header,
//! which is how the sidecar knows where it is meant to go. Without a proxy the
//! URL is dialled directly (tests, or plain Kubernetes DNS).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use opentelemetry::trace::TraceContextExt as _;
use proxy_core::telemetry::ClientSpanInfo;

use crate::telemetry::{ActiveSpan, ServiceTelemetry, TraceContext, propagation_headers};

/// Largest response body read from a peer.
const MAX_RESPONSE: usize = 1024 * 1024;

/// Why an outbound call produced no HTTP response.
///
/// All of these are transient from the caller's point of view: the request
/// may or may not have reached the peer, so only idempotent calls may be retried.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The URL could not be parsed.
    #[error("invalid url `{url}`")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: axum::http::Error,
    },
    /// The request body could not be encoded.
    #[error("cannot encode request body")]
    Encode(#[source] serde_json::Error),
    /// Connecting or sending failed.
    #[error("request to {url} failed")]
    Send {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// Reading the response body failed or it was too large.
    #[error("reading the response from {url} failed")]
    Body {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No complete response within the timeout.
    #[error("request to {url} timed out after {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// A complete response from a peer.
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl OutboundResponse {
    /// The error kind when a Weir proxy on the way (this service's sidecar or
    /// the peer's), not the peer itself, generated this answer: the
    /// `x-weir-error` header every problem the proxies generate carries
    /// (`unknown-destination`, `circuit-open`, `upstream-timeout`, …). Such
    /// an answer says nothing about what the peer did or would do: a `404`
    /// for an unknown destination is not the peer's "no such thing", and a
    /// `503` for an open circuit is not the peer's refusal.
    pub fn generated_by_proxy(&self) -> Option<&str> {
        self.headers
            .get(proxy_core::problem::GENERATED_BY)
            .map(|v| v.to_str().unwrap_or("unknown"))
    }

    /// Decodes the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// The HTTP client services use to call each other.
///
/// With tracing on ([`Outbound::with_telemetry`]) every call made while a
/// request is being handled is a CLIENT span, child of the current span, and
/// its context is what the callee receives in `traceparent`; otherwise the
/// caller's trace headers are passed on as they came.
#[derive(Clone, Debug)]
pub struct Outbound {
    client: Client<ProxyConnector, Full<Bytes>>,
    timeout: Duration,
    telemetry: Option<ServiceTelemetry>,
}

impl Outbound {
    /// A client that sends every request to `proxy` when set (the sidecar's
    /// outbound address), else straight to the URL's host; each call must
    /// complete within `timeout`.
    pub fn new(proxy: Option<SocketAddr>, timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let connector = ProxyConnector { http, proxy };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            timeout,
            telemetry: None,
        }
    }

    /// Calls become CLIENT spans of `telemetry` (when it is on).
    pub fn with_telemetry(mut self, telemetry: ServiceTelemetry) -> Self {
        self.telemetry = telemetry.telemetry().is_enabled().then_some(telemetry);
        self
    }

    /// Sends a request with an optional JSON body, carrying the request id of
    /// `incoming` and the trace context (see [`Outbound`]), and reads the
    /// whole response.
    pub async fn send_json<B: Serialize>(
        &self,
        method: Method,
        url: &str,
        incoming: &HeaderMap,
        extra: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<OutboundResponse, OutboundError> {
        self.send_json_attempt(method, url, incoming, extra, body, 1)
            .await
    }

    /// [`Outbound::send_json`] as try number `attempt` (1 for the first) of
    /// a call the caller retries; the CLIENT span records the number
    /// (`weir.retry.attempt`).
    pub async fn send_json_attempt<B: Serialize>(
        &self,
        method: Method,
        url: &str,
        incoming: &HeaderMap,
        extra: &[(&str, &str)],
        body: Option<&B>,
        attempt: u32,
    ) -> Result<OutboundResponse, OutboundError> {
        let bytes = match body {
            Some(body) => Bytes::from(serde_json::to_vec(body).map_err(OutboundError::Encode)?),
            None => Bytes::new(),
        };
        let mut builder = Request::builder().method(method).uri(url);
        if let Some(headers) = builder.headers_mut() {
            headers.extend(propagation_headers(incoming));
            if body.is_some() {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
            for (name, value) in extra {
                if let (Ok(name), Ok(value)) = (
                    header::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    headers.insert(name, value);
                }
            }
        }
        let mut request =
            builder
                .body(Full::new(bytes))
                .map_err(|source| OutboundError::InvalidUrl {
                    url: url.to_owned(),
                    source,
                })?;
        let mut span = self.client_span(&mut request, attempt);
        let call = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|source| OutboundError::Send {
                        url: url.to_owned(),
                        source,
                    })?;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, MAX_RESPONSE)
                .collect()
                .await
                .map_err(|source| OutboundError::Body {
                    url: url.to_owned(),
                    source,
                })?
                .to_bytes();
            Ok(OutboundResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(OutboundError::Timeout {
                url: url.to_owned(),
                timeout: self.timeout,
            }),
        };
        if let Some(span) = &mut span {
            match &result {
                Ok(response) => span.record_response(response.status),
                Err(error) => span.record_error(error.kind()),
            }
        }
        result
    }

    /// Opens the CLIENT span of one call and writes its context into the
    /// request's headers; `None` with tracing off or outside a request.
    fn client_span(&self, request: &mut Request<Full<Bytes>>, attempt: u32) -> Option<ActiveSpan> {
        let telemetry = self.telemetry.as_ref()?;
        let parent = TraceContext::current();
        if !parent.has_active_span() {
            return None;
        }
        let host = request.uri().host().map(str::to_owned);
        Some(telemetry.telemetry().client_span(
            &parent,
            request,
            ClientSpanInfo {
                attempt,
                upstream: host.as_deref(),
                ..ClientSpanInfo::default()
            },
        ))
    }
}

impl OutboundError {
    /// A short, stable name for `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            OutboundError::InvalidUrl { .. } => "invalid_url",
            OutboundError::Encode(_) => "encode_error",
            OutboundError::Send { .. } => "connect_error",
            OutboundError::Body { .. } => "body_error",
            OutboundError::Timeout { .. } => "timeout",
        }
    }
}

/// Dials the proxy when one is configured, else the request's own host.
#[derive(Clone, Debug)]
struct ProxyConnector {
    http: HttpConnector,
    proxy: Option<SocketAddr>,
}

impl tower::Service<Uri> for ProxyConnector {
    type Response = ProxiedStream;
    type Error = <HttpConnector as tower::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::<Uri>::poll_ready(&mut self.http, cx)
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        let (target, proxied) = match self.proxy {
            Some(proxy) => match Uri::builder()
                .scheme("http")
                .authority(proxy.to_string())
                .path_and_query("/")
                .build()
            {
                Ok(uri) => (uri, true),
                Err(_) => (destination, false),
            },
            None => (destination, false),
        };
        let connecting = tower::Service::call(&mut self.http, target);
        Box::pin(async move {
            let io = connecting.await?;
            Ok(ProxiedStream { io, proxied })
        })
    }
}

/// A connection that tells the client whether it leads to a proxy, so requests
/// on it carry the absolute-form target a forward proxy expects.
#[derive(Debug)]
struct ProxiedStream {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for ProxiedStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl hyper::rt::Read for ProxiedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for ProxiedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
