//! Transparent outbound: every TCP connection the pod's iptables rules redirect
//! to the outbound port arrives here, HTTP or not.
//!
//! Per connection: recover the original destination (`SO_ORIGINAL_DST`); if
//! its port is opaque, proxy bytes to it; else peek at the first bytes (with a
//! short timeout) and serve HTTP/1 or HTTP/2 through the same outbound handler
//! as explicit mode, or proxy anything else as plain TCP. A connection that was
//! not redirected (the app dialled the outbound port itself) is served as
//! explicit-mode HTTP.

mod detect;
mod opaque;
mod original_dst;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use proxy_core::server::{ConnInfo, Handler};
use proxy_core::shutdown::Shutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

pub(crate) use detect::{Detected, classify};
use original_dst::original_dst;

use crate::outbound::Outbound;
use crate::runtime::Runtime;

/// Most connections handled at once; beyond it, new ones wait in the backlog.
const MAX_CONNECTIONS: usize = 10_000;

/// Serves redirected connections on `listener` until `shutdown`, then drains
/// for up to `drain`.
pub(crate) async fn serve(
    listener: TcpListener,
    runtime: Arc<ArcSwap<Runtime>>,
    shutdown: Shutdown,
    drain: Duration,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let opaque_tasks = Arc::new(());
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut stop => break,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let runtime = runtime.clone();
        let watcher = graceful.watcher();
        let tracker = opaque_tasks.clone();
        tokio::spawn(async move {
            handle_connection(stream, remote, runtime, watcher, tracker).await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = async {
            graceful.shutdown().await;
            // Opaque tunnels hold a clone each; wait for them too.
            while Arc::strong_count(&opaque_tasks) > 1 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } => {}
        _ = tokio::time::sleep(drain) => tracing::warn!("drain deadline passed; closing remaining transparent connections"),
    }
}

async fn handle_connection(
    stream: TcpStream,
    remote: SocketAddr,
    runtime: Arc<ArcSwap<Runtime>>,
    watcher: hyper_util::server::graceful::Watcher,
    tracker: Arc<()>,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let redirected = original_dst(&stream).ok();
    let rt = runtime.load_full();
    let outbound = &rt.config.outbound;
    if let Some(dst) = redirected
        && outbound.opaque_ports.contains(&dst.port())
    {
        rt.metrics.connection("opaque");
        drop(rt);
        let _t = tracker;
        opaque::proxy(stream, dst).await;
        return;
    }
    let detected = match detect::detect(&stream, outbound.detect_timeout).await {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "connection failed during protocol detection");
            return;
        }
    };
    let proto = match detected {
        Detected::Http1 => "http1",
        Detected::Http2 => "http2",
        Detected::Opaque => "opaque",
    };
    rt.metrics.connection(proto);
    drop(rt);
    match (detected, redirected) {
        (Detected::Opaque, Some(dst)) => {
            let _t = tracker;
            opaque::proxy(stream, dst).await;
        }
        (Detected::Opaque, None) => {
            tracing::debug!(%remote, "non-HTTP connection to the outbound port without an original destination; closing");
        }
        (_, dst) => {
            let handler = Outbound {
                runtime,
                original_dst: dst,
            };
            let conn = Arc::new(ConnInfo::new(remote, local, false, None));
            let svc = service_fn(move |req| {
                let fut = handler.clone().handle(req, conn.clone());
                async move { Ok::<_, std::convert::Infallible>(fut.await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            if let Err(e) = watcher.watch(served).await {
                tracing::debug!(%remote, error = %e, "transparent HTTP connection ended with an error");
            }
        }
    }
}
