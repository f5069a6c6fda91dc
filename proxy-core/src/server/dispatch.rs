//! The step a listener may take on a connection before HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::{ConnLimits, Handler};

/// What [`Dispatch::dispatch`] decided for one connection.
pub enum Dispatched<H> {
    /// Serve HTTP on `stream` with `handler`, under the listener's limits.
    Http { stream: TcpStream, handler: H },
    /// Terminate TLS on `stream` with `config` (instead of the listener's
    /// own TLS setting), then serve HTTP with `handler`. A client
    /// certificate the config verified becomes the connection's
    /// [`PeerIdentity`](crate::mtls::PeerIdentity).
    Tls {
        stream: TcpStream,
        handler: H,
        config: Arc<rustls::ServerConfig>,
    },
    /// The step served (or refused) the connection itself, e.g. as an opaque
    /// TCP tunnel; bound such work with `limits.tunnel_idle_timeout`
    /// ([`super::copy_bidirectional_idle`]).
    Handled,
}

/// Looks at each accepted connection before HTTP.
///
/// The accept loop, the connection cap, drain and HTTP serving stay in
/// [`super::serve_with`]; a dispatch step only decides what a connection is.
/// The connection's slot is held while the step runs and, when it answers
/// [`Dispatched::Handled`], until it returns; during drain the step is waited
/// for like an HTTP connection, then cut at the drain deadline.
pub trait Dispatch: Clone + Send + Sync + 'static {
    type Handler: Handler;

    fn dispatch(
        self,
        stream: TcpStream,
        remote: SocketAddr,
        limits: &ConnLimits,
    ) -> impl Future<Output = Dispatched<Self::Handler>> + Send;
}

/// Every connection is HTTP for one handler: what [`super::serve`] uses.
#[derive(Clone)]
pub(crate) struct HttpOnly<H>(pub(crate) H);

impl<H: Handler> Dispatch for HttpOnly<H> {
    type Handler = H;

    async fn dispatch(
        self,
        stream: TcpStream,
        _remote: SocketAddr,
        _limits: &ConnLimits,
    ) -> Dispatched<H> {
        Dispatched::Http {
            stream,
            handler: self.0,
        }
    }
}
