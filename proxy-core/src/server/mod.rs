//! Serving HTTP: the accept loop, TLS termination, per-connection limits and
//! graceful drain.
//!
//! Servers take an already bound listener and a shutdown signal (as mini-redis
//! does), so tests bind `127.0.0.1:0` and the binaries bind the configured
//! address; the very same code runs in both.
//!
//! Every listener of the gateway, the sidecar and the injection webhook is
//! served here, so one set of [`ConnLimits`] bounds them all. A listener that
//! must look at a connection before HTTP (the sidecar's transparent outbound:
//! original destination, protocol detection, opaque TCP) plugs in a
//! [`Dispatch`] step; the accept loop, the connection cap, drain and HTTP
//! serving stay here.
//!
//! # Layout
//!
//! - `accept.rs`: the accept loop, connection slots, drain.
//! - `dispatch.rs`: the per-connection step before HTTP.
//! - `conn.rs`: TLS, HTTP/1.1 and HTTP/2, head deadline, idle bounds.
//! - `head_size.rs`: the head size limit on every request.
//! - `progress.rs`: what counts as a connection doing something.
//! - `request_body.rs`, `response_body.rs`: the bodies handlers see and return.
//! - `tunnel.rs`: the idle bound of upgraded and opaque connections.

mod accept;
mod conn;
mod dispatch;
mod head_size;
mod progress;
mod request_body;
mod response_body;
mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};

pub use accept::{serve, serve_with};
pub use dispatch::{Dispatch, Dispatched};
pub use request_body::RequestBody;
pub use tunnel::{TunnelIo, copy_bidirectional_idle};

use crate::body::Body;
use crate::config::LimitsConfig;
use crate::mtls::PeerIdentity;

/// What a handler knows about the connection a request arrived on.
#[derive(Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// The TLS server name the client asked for.
    pub sni: Option<String>,
    /// The client's verified workload identity (mutual TLS listeners only).
    pub peer: Option<PeerIdentity>,
    /// `remote`'s IP as a header value, formatted once per connection.
    remote_ip_header: http::HeaderValue,
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
            peer: None,
            remote_ip_header,
        }
    }

    /// The same connection, with the identity its client certificate proved.
    pub fn with_peer(mut self, peer: Option<PeerIdentity>) -> Self {
        self.peer = peer;
        self
    }

    /// The client's IP for `X-Forwarded-For`.
    pub fn remote_ip_header(&self) -> &http::HeaderValue {
        &self.remote_ip_header
    }

    /// `https` or `http`, for `X-Forwarded-Proto`.
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

/// Handles one request. The handler is cloned per request, so keep it an
/// `Arc` or a few `Arc`s.
///
/// The request body is the client's stream with the `body_read_timeout`
/// already applied (see [`RequestBody`]), so no handler can wait forever on a
/// client that stopped sending.
pub trait Handler: Clone + Send + Sync + 'static {
    fn handle(
        self,
        req: Request<RequestBody>,
        conn: Arc<ConnInfo>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static;
}

/// Connection-level limits for one listener (see [`LimitsConfig`] for what
/// each one bounds).
#[derive(Clone, Debug)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_idle_timeout: Duration,
    pub body_read_timeout: Duration,
    pub tunnel_idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// The shortest bound a timer here is given: a zero would fire before the
/// first byte could move.
const MIN_BOUND: Duration = Duration::from_millis(1);

impl From<&LimitsConfig> for ConnLimits {
    fn from(l: &LimitsConfig) -> Self {
        Self {
            max_connections: l.max_connections.max(1),
            header_read_timeout: l.header_read_timeout.get().max(MIN_BOUND),
            idle_timeout: l.idle_timeout.get().max(MIN_BOUND),
            request_idle_timeout: l.request_idle_timeout.get().max(MIN_BOUND),
            body_read_timeout: l.body_read_timeout.get().max(MIN_BOUND),
            tunnel_idle_timeout: l.tunnel_idle_timeout.get().max(MIN_BOUND),
            max_header_bytes: l.max_header_bytes.as_usize(),
            max_headers: l.max_headers.max(1),
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
