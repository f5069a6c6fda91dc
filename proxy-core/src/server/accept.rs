//! The accept loop: bounded connections, graceful drain.

use std::sync::Arc;

use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Handler, ServeOptions, conn};
use crate::shutdown::Shutdown;

/// Serves `listener` until `shutdown` fires, then stops accepting and lets
/// in-flight requests finish for up to `opts.drain` before returning.
///
/// At most `max_connections` connections are open at once; beyond that the
/// loop stops calling `accept`, so new clients wait in the kernel backlog
/// instead of costing memory here.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    opts: ServeOptions,
    handler: H,
    shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(opts.limits.max_connections));
    let graceful = GracefulShutdown::new();
    // Fired (or dropped) when `serve` returns: connections still open after
    // the drain deadline end with it instead of outliving the server.
    let (close_all, closing) = crate::shutdown::channel();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let local = listener.local_addr().ok();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let conn_opts = opts.clone();
        let watcher = graceful.watcher();
        let handler = handler.clone();
        let local = local.unwrap_or(remote);
        let shutdown = shutdown.clone();
        let slot = ConnSlot::new(permit, opts.active_connections.clone());
        let closing = closing.wait();
        tokio::spawn(async move {
            tokio::select! {
                _ = conn::serve_connection(stream, slot, remote, local, conn_opts, handler, watcher, shutdown) => {}
                _ = closing => {}
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("all connections drained"),
        _ = tokio::time::sleep(opts.drain) => {
            tracing::warn!(drain = ?opts.drain, "drain deadline passed; closing remaining connections");
        }
    }
    close_all.trigger();
}

/// One of the `max_connections` slots, counted in the open-connections gauge.
///
/// It lives inside the connection's IO object, so it is released when the
/// socket is closed, not when the HTTP connection task ends: an upgraded
/// connection (WebSocket) moves the IO into its tunnel and keeps the slot
/// until the tunnel closes.
#[derive(Debug)]
pub(super) struct ConnSlot {
    _permit: OwnedSemaphorePermit,
    gauge: Option<Gauge>,
}

impl ConnSlot {
    fn new(permit: OwnedSemaphorePermit, gauge: Option<Gauge>) -> Self {
        if let Some(g) = &gauge {
            g.inc();
        }
        Self {
            _permit: permit,
            gauge,
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.dec();
        }
    }
}
