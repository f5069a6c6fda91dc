//! Mutual TLS toward an upstream sidecar: the handshake the pool runs on each
//! new connection of a destination configured for it, and the IO that results.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::Authority;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::Protocol;
use crate::mtls::{ALPN_H2, ALPN_HTTP11, CredentialSource, ExpectedPeer, client_config};

/// How one upstream's connections are secured: the workload's credentials,
/// the identity the upstream must prove, and the ALPN protocols offered.
#[derive(Clone)]
pub struct UpstreamTls {
    connector: TlsConnector,
    source: CredentialSource,
    /// ALPN decides HTTP/1.1 or HTTP/2 per endpoint (protocol `auto`).
    negotiate: bool,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("negotiate", &self.negotiate)
            .finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// For an upstream spoken to with `protocol`: `http1` offers only
    /// `http/1.1`, `http2` only `h2`, and `auto` offers both and lets the
    /// upstream's answer choose (so two sidecars speak HTTP/2, one multiplexed
    /// connection, whatever the app spoke).
    pub fn new(source: CredentialSource, expected: ExpectedPeer, protocol: Protocol) -> Self {
        let alpn: &[&[u8]] = match protocol {
            Protocol::Http1 => &[ALPN_HTTP11],
            Protocol::Http2 => &[ALPN_H2],
            Protocol::Auto => &[ALPN_H2, ALPN_HTTP11],
        };
        // `client_config` fails only for a crypto provider without TLS 1.3;
        // the process's one provider (ring) has it.
        let cfg = client_config(source.clone(), expected, alpn)
            .expect("the ring provider supports TLS 1.3");
        Self {
            connector: TlsConnector::from(Arc::new(cfg)),
            source,
            negotiate: protocol == Protocol::Auto,
        }
    }

    pub(crate) fn negotiates(&self) -> bool {
        self.negotiate
    }

    /// Runs the handshake on `tcp` to `endpoint`.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        endpoint: &Authority,
    ) -> io::Result<TlsStream<TcpStream>> {
        if self.source.id().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "no workload certificate yet: cannot open a mutual TLS connection",
            ));
        }
        // Certificates are checked by SPIFFE ID, not by this name; an IP
        // also keeps SNI out of the hello, and keys session resumption per
        // endpoint.
        let host = endpoint
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.connector.connect(name, tcp).await
    }
}

/// A connection to an upstream: plain TCP or mutual TLS.
pub(crate) enum UpstreamIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl UpstreamIo {
    /// Whether ALPN chose HTTP/2.
    pub(crate) fn alpn_h2(&self) -> bool {
        match self {
            UpstreamIo::Plain(_) => false,
            UpstreamIo::Tls(s) => s.get_ref().1.alpn_protocol() == Some(ALPN_H2),
        }
    }
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(s) => s.is_write_vectored(),
            UpstreamIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
