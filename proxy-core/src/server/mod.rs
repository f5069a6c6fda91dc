//! Serving HTTP: the accept loop, TLS termination, per-connection limits and
//! graceful drain.
//!
//! Servers take an already bound listener and a shutdown signal (as mini-redis
//! does), so tests bind `127.0.0.1:0` and the binaries bind the configured
//! address; the very same code runs in both.

mod accept;
mod conn;
mod idle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;

pub use accept::serve;

use crate::body::Body;
use crate::config::LimitsConfig;

/// What a handler knows about the connection a request arrived on.
#[derive(Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// The TLS server name the client asked for.
    pub sni: Option<String>,
    /// `remote`'s IP as a header value, formatted once per connection.
    remote_ip_header: http::HeaderValue,
    active: AtomicUsize,
}

impl ConnInfo {
    pub fn new(remote: SocketAddr, local: SocketAddr, tls: bool, sni: Option<String>) -> Self {
        let remote_ip_header = http::HeaderValue::from_str(&remote.ip().to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"));
        Self {
            remote,
            local,
            tls,
            sni,
            remote_ip_header,
            active: AtomicUsize::new(0),
        }
    }

    /// The client's IP for `X-Forwarded-For`.
    pub fn remote_ip_header(&self) -> &http::HeaderValue {
        &self.remote_ip_header
    }

    /// `https` or `http`, for `X-Forwarded-Proto`.
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    pub(crate) fn active_requests(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// Handles one request. The handler is cloned per request, so keep it an
/// `Arc` or a few `Arc`s.
pub trait Handler: Clone + Send + Sync + 'static {
    fn handle(
        self,
        req: Request<Incoming>,
        conn: Arc<ConnInfo>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static;
}

/// Connection-level limits for one listener.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
}

impl From<&LimitsConfig> for ConnLimits {
    fn from(l: &LimitsConfig) -> Self {
        Self {
            max_connections: l.max_connections.max(1),
            header_read_timeout: l.header_read_timeout.get(),
            idle_timeout: l.idle_timeout.get(),
            max_header_bytes: l.max_header_bytes.as_usize(),
        }
    }
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self::from(&LimitsConfig::default())
    }
}

/// TLS settings that a reload can replace; each new connection reads the
/// current one, established connections keep theirs.
pub type TlsSource = Arc<ArcSwap<rustls::ServerConfig>>;

/// Everything [`serve`] needs besides the listener, handler and shutdown.
#[derive(Clone)]
pub struct ServeOptions {
    pub limits: ConnLimits,
    pub tls: Option<TlsSource>,
    /// How long in-flight requests may run after shutdown before connections
    /// are cut.
    pub drain: Duration,
    /// Open client connections, when the caller exports the gauge.
    pub active_connections: Option<prometheus_client::metrics::gauge::Gauge>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            limits: ConnLimits::default(),
            tls: None,
            drain: Duration::from_secs(30),
            active_connections: None,
        }
    }
}
