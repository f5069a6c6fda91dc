//! One client connection: optional TLS handshake, then HTTP/1.1 or HTTP/2
//! (detected from the preface, or chosen by ALPN), with upgrades enabled, and
//! the bounds that end it:
//!
//! - the first request head must arrive within `header_read_timeout`
//!   (hyper's own timer bounds every later HTTP/1.1 head);
//! - with no request in flight, the connection is closed after
//!   `idle_timeout` without progress (PINGs are not progress, see
//!   `progress.rs`);
//! - with requests in flight, after `request_idle_timeout` without progress;
//! - request bodies fail after `body_read_timeout` without data
//!   ([`RequestBody`]);
//! - once upgraded, the tunnel closes after `tunnel_idle_timeout` without a
//!   byte ([`TunnelIo`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::accept::ConnSlot;
use super::head_size;
use super::progress::Progress;
use super::response_body::ResponseBody;
use super::tunnel::TunnelIo;
use super::{ConnInfo, ConnLimits, Handler, RequestBody, ServeOptions};
use crate::mtls::{PeerIdentity, spiffe_id_of};

/// How often we PING an HTTP/2 client to notice a dead peer. PINGs are not
/// progress, so they never keep an unused connection open.
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// Most concurrent streams one HTTP/2 client may open.
const H2_MAX_CONCURRENT_STREAMS: u32 = 1024;

// The connection's parts, where it came from, and how to serve it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve_connection<H: Handler>(
    stream: TcpStream,
    slot: ConnSlot,
    remote: SocketAddr,
    local: SocketAddr,
    opts: &ServeOptions,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: H,
    watcher: Watcher,
) {
    let upgraded = Arc::new(AtomicBool::new(false));
    let io = TunnelIo::client(
        stream,
        opts.limits.tunnel_idle_timeout,
        upgraded.clone(),
        slot,
    );
    match tls {
        None => {
            let info = Arc::new(ConnInfo::new(remote, local, false, None));
            run_http(io, info, &opts.limits, handler, watcher, upgraded).await;
        }
        // Boxed: a connection's task is as large as the largest state of
        // this future, and TLS's (the handshake, then rustls' connection
        // state inside the stream) is the largest. Boxed, a plaintext
        // connection does not carry room for it for its whole life.
        Some(tls) => {
            Box::pin(serve_tls(
                io, tls, remote, local, opts, handler, watcher, upgraded,
            ))
            .await;
        }
    }
}

/// The TLS handshake, then HTTP over the TLS stream.
#[allow(clippy::too_many_arguments)]
async fn serve_tls<H: Handler>(
    io: TunnelIo<TcpStream>,
    tls: Arc<rustls::ServerConfig>,
    remote: SocketAddr,
    local: SocketAddr,
    opts: &ServeOptions,
    handler: H,
    watcher: Watcher,
    upgraded: Arc<AtomicBool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let handshake = tokio::time::timeout(opts.limits.header_read_timeout, acceptor.accept(io));
    let tls_stream = match handshake.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "TLS handshake timed out");
            return;
        }
    };
    let session = tls_stream.get_ref().1;
    let sni = session.server_name().map(str::to_owned);
    // Set only when the config asked for a client certificate and its
    // verifier accepted the chain.
    let peer = session
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(spiffe_id_of)
        .map(PeerIdentity);
    let info = Arc::new(ConnInfo::new(remote, local, true, sni).with_peer(peer));
    run_http(tls_stream, info, &opts.limits, handler, watcher, upgraded).await;
}

/// The HTTP settings every listener shares.
fn builder(limits: &ConnLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper starts this timer whenever it waits for a head, so it bounds
        // every request of a keep-alive connection, not only the first.
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL);
    builder
}

async fn run_http<I, H>(
    io: I,
    info: Arc<ConnInfo>,
    limits: &ConnLimits,
    handler: H,
    watcher: Watcher,
    upgraded: Arc<AtomicBool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let progress = Progress::new();
    // Set once the first request head has arrived (see `first_head` below).
    let got_request = Arc::new(AtomicBool::new(false));
    let svc_got_request = got_request.clone();
    let svc_info = info.clone();
    let svc_progress = progress.clone();
    let body_read_timeout = limits.body_read_timeout;
    let max_head = limits.max_header_bytes;
    let service = service_fn(move |req: Request<Incoming>| {
        svc_got_request.store(true, Ordering::Relaxed);
        let busy = svc_progress.begin();
        let (mut parts, body) = req.into_parts();
        if let Some(peer) = &svc_info.peer {
            parts.extensions.insert(peer.clone());
        }
        let size = head_size::head_size(&parts);
        let work = if size <= max_head {
            let body = RequestBody::new(body, body_read_timeout, svc_progress.clone());
            let req = Request::from_parts(parts, body);
            // The handler's future is large (every phase's state is inlined
            // into it). Allocated first and then written, it is built in its
            // heap slot; built on the stack and then boxed, it was copied
            // twice per request (15 % of the gateway's instructions).
            let slot = Box::new_uninit();
            Ok(Box::into_pin(Box::write(
                slot,
                handler.clone().handle(req, svc_info.clone()),
            )))
        } else {
            Err(head_size::too_large(&parts, size, max_head))
        };
        let upgraded = upgraded.clone();
        // Boxed: hyper keeps a slot the size of this future for the whole
        // life of a connection; boxed, an idle connection holds a pointer
        // instead of a whole request handler's state. It is small itself:
        // the handler's future is behind its own box.
        Box::pin(async move {
            let resp = match work {
                Ok(fut) => fut.await,
                Err(refused) => refused,
            };
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                // From here the connection is a tunnel with its own bound.
                upgraded.store(true, Ordering::Relaxed);
            }
            Ok::<_, std::convert::Infallible>(resp.map(|b| ResponseBody::new(b, busy)))
        })
    });
    let conn = builder(limits)
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    let conn = watcher.watch(conn);
    tokio::pin!(conn);

    // hyper's `header_read_timeout` only starts once the protocol is known
    // (the first bytes decide between HTTP/1.1 and the HTTP/2 preface), so a
    // client that connects and sends nothing, or stalls inside the preface,
    // would hold its connection slot until the idle timeout. Bound the time
    // to the first request head here.
    let head_deadline = Instant::now() + limits.header_read_timeout;
    let first_head = async {
        tokio::time::sleep_until(head_deadline).await;
        if got_request.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        res = &mut conn => {
            if let Err(e) = res {
                tracing::debug!(remote = %info.remote, error = %e, "connection ended with an error");
            }
        }
        _ = idle(&progress, limits) => tracing::debug!(remote = %info.remote, "closing idle connection"),
        _ = first_head => tracing::debug!(remote = %info.remote, "no request head within the header read timeout"),
    }
}

/// Resolves once the connection has made no progress for its bound:
/// `idle_timeout` with nothing in flight, `request_idle_timeout` with
/// requests in flight. Wakes at least every shorter bound to notice a change
/// between the two, so at most a few timer wake-ups per bound.
async fn idle(progress: &Progress, limits: &ConnLimits) {
    let recheck = limits.idle_timeout.min(limits.request_idle_timeout);
    loop {
        let bound = if progress.busy() == 0 {
            limits.idle_timeout
        } else {
            limits.request_idle_timeout
        };
        let now = Instant::now();
        let deadline = progress.last() + bound;
        if now >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline.min(now + recheck)).await;
    }
}
