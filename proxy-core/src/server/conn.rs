//! One client connection: optional TLS handshake, then HTTP/1.1 or HTTP/2
//! (detected from the preface, or chosen by ALPN), with upgrades enabled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::accept::ConnSlot;
use super::idle::{Activity, IdleIo};
use super::{ConnInfo, Handler, ServeOptions};
use crate::shutdown::Shutdown;

// One call site (the accept loop) passes everything a connection owns.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve_connection<H: Handler>(
    stream: TcpStream,
    slot: ConnSlot,
    remote: SocketAddr,
    local: SocketAddr,
    opts: ServeOptions,
    handler: H,
    watcher: Watcher,
    shutdown: Shutdown,
) {
    let activity = Activity::new();
    let io = IdleIo::new(stream, activity.clone(), slot);
    match &opts.tls {
        None => {
            let info = Arc::new(ConnInfo::new(remote, local, false, None));
            run_http(io, info, &opts, handler, watcher, activity, shutdown).await;
        }
        Some(tls) => {
            let acceptor = TlsAcceptor::from(tls.load_full());
            let handshake =
                tokio::time::timeout(opts.limits.header_read_timeout, acceptor.accept(io));
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
            let sni = tls_stream.get_ref().1.server_name().map(str::to_owned);
            let info = Arc::new(ConnInfo::new(remote, local, true, sni));
            run_http(
                tls_stream, info, &opts, handler, watcher, activity, shutdown,
            )
            .await;
        }
    }
}

async fn run_http<I, H>(
    io: I,
    info: Arc<ConnInfo>,
    opts: &ServeOptions,
    handler: H,
    watcher: Watcher,
    activity: Activity,
    shutdown: Shutdown,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.limits.header_read_timeout)
        .max_buf_size(opts.limits.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(opts.limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(1024)
        .keep_alive_interval(std::time::Duration::from_secs(30));

    // Set once the first request head has arrived (see `first_head` below).
    let got_request = Arc::new(AtomicBool::new(false));
    let svc_got_request = got_request.clone();
    let svc_info = info.clone();
    let service = service_fn(move |req| {
        svc_got_request.store(true, Ordering::Relaxed);
        let info = svc_info.clone();
        info.active.fetch_add(1, Ordering::Relaxed);
        let fut = handler.clone().handle(req, info.clone());
        // Boxed: hyper keeps a slot the size of this future for the whole
        // life of a connection; boxed, an idle connection holds a pointer
        // instead of a whole request handler's state.
        Box::pin(async move {
            let resp = fut.await;
            info.active.fetch_sub(1, Ordering::Relaxed);
            Ok::<_, std::convert::Infallible>(resp)
        })
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    let conn = watcher.watch(conn);
    tokio::pin!(conn);

    // hyper's `header_read_timeout` only starts once the protocol is known
    // (the first bytes decide between HTTP/1.1 and the HTTP/2 preface), so a
    // client that connects and sends nothing, or stalls inside the preface,
    // would hold its connection slot until the idle timeout. Bound the time
    // to the first request head here.
    let head_deadline = tokio::time::Instant::now() + opts.limits.header_read_timeout;
    let first_head = async {
        tokio::time::sleep_until(head_deadline).await;
        if got_request.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    let idle_timeout = opts.limits.idle_timeout;
    let idle = async {
        loop {
            let deadline = activity.last() + idle_timeout;
            tokio::time::sleep_until(deadline).await;
            if info.active_requests() == 0
                && activity.last() + idle_timeout <= tokio::time::Instant::now()
            {
                return;
            }
            if info.active_requests() > 0 {
                // A request is waiting on its upstream; check again later.
                tokio::time::sleep(idle_timeout).await;
            }
        }
    };
    tokio::select! {
        res = &mut conn => {
            if let Err(e) = res {
                tracing::debug!(remote = %info.remote, error = %e, "connection ended with an error");
            }
        }
        _ = idle => tracing::debug!(remote = %info.remote, "closing idle connection"),
        _ = first_head => tracing::debug!(remote = %info.remote, "no request head within the header read timeout"),
    }
    // `shutdown` is observed through the graceful watcher; keep the handle
    // alive for the connection's lifetime so a dropped trigger is noticed.
    drop(shutdown);
}
