//! The accept loop: bounded connections, graceful drain.

use std::sync::Arc;

use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::dispatch::{Dispatch, Dispatched, HttpOnly};
use super::{Handler, ServeOptions, conn};
use crate::shutdown::Shutdown;

/// Serves `listener` as HTTP with `handler` until `shutdown` fires, then
/// stops accepting and lets in-flight requests finish for up to `opts.drain`
/// before returning.
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
    serve_with(listener, opts, HttpOnly(handler), shutdown).await;
}

/// [`serve`] with a [`Dispatch`] step run on each connection before HTTP.
pub async fn serve_with<D: Dispatch>(
    listener: TcpListener,
    opts: ServeOptions,
    dispatch: D,
    shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(opts.limits.max_connections));
    let graceful = GracefulShutdown::new();
    // Every connection task holds a sender; `recv` returns `None` once all
    // are gone, which is how drain waits for connections hyper does not
    // watch (a dispatch step still running, an opaque tunnel).
    let (task_alive, mut tasks_done) = mpsc::channel::<()>(1);
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
        let opts = opts.clone();
        let watcher = graceful.watcher();
        let dispatch = dispatch.clone();
        // The address this client reached: on a wildcard listener
        // (`0.0.0.0:9901`) that is the interface's own address, which is
        // what the client names in `Host` (the admin listener checks it).
        let local = stream.local_addr().ok().or(local).unwrap_or(remote);
        let slot = ConnSlot::new(permit, opts.active_connections.clone());
        let closing = closing.wait();
        let alive = task_alive.clone();
        tokio::spawn(async move {
            let serve = async {
                match dispatch.dispatch(stream, remote, &opts.limits).await {
                    Dispatched::Http { stream, handler } => {
                        let tls = opts.tls.as_ref().map(|t| t.load_full());
                        conn::serve_connection(
                            stream, slot, remote, local, &opts, tls, handler, watcher,
                        )
                        .await;
                    }
                    Dispatched::Tls {
                        stream,
                        handler,
                        config,
                    } => {
                        conn::serve_connection(
                            stream,
                            slot,
                            remote,
                            local,
                            &opts,
                            Some(config),
                            handler,
                            watcher,
                        )
                        .await;
                    }
                    Dispatched::Handled => drop(slot),
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = closing => {}
            }
            drop(alive);
        });
    }
    drop(listener);
    drop(task_alive);
    tokio::select! {
        _ = async {
            graceful.shutdown().await;
            let _ = tasks_done.recv().await;
        } => tracing::debug!("all connections drained"),
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
pub(crate) struct ConnSlot {
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
