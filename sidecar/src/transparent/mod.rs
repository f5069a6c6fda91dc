//! Transparent outbound: every TCP connection the pod's iptables rules redirect
//! to the outbound port arrives here, HTTP or not.
//!
//! The listener is served by proxy-core's serving function like every other
//! one (connection cap, head deadline, idle bounds, header limits, drain);
//! this module is only its per-connection [`Dispatch`] step: recover the
//! original destination (`SO_ORIGINAL_DST`); refuse a connection whose
//! destination is the sidecar itself; if its port is opaque, proxy bytes to
//! it; else peek at the first bytes (with a short timeout) and serve HTTP/1
//! or HTTP/2 through the same outbound handler as explicit mode, or proxy
//! anything else as plain TCP. A connection that was not redirected (the app
//! dialled the outbound port itself) is served as explicit-mode HTTP.

mod detect;
mod loops;
mod opaque;
mod original_dst;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use proxy_core::server::{ConnLimits, Dispatch, Dispatched};
use tokio::net::TcpStream;

pub(crate) use detect::{Detected, classify};
pub(crate) use loops::OwnAddrs;
use original_dst::original_dst;

use crate::outbound::Outbound;
use crate::runtime::Runtime;

/// The transparent listener's dispatch step.
#[derive(Clone)]
pub(crate) struct Transparent {
    pub(crate) runtime: Arc<ArcSwap<Runtime>>,
    /// The sidecar's own listeners: never a destination.
    pub(crate) own: Arc<OwnAddrs>,
}

impl Dispatch for Transparent {
    type Handler = Outbound;

    async fn dispatch(
        self,
        stream: TcpStream,
        remote: SocketAddr,
        limits: &ConnLimits,
    ) -> Dispatched<Outbound> {
        let redirected = original_dst(&stream).ok();
        let rt = self.runtime.load_full();
        if let Some(dst) = redirected
            && self.own.is_own(dst)
        {
            // Forwarding would dial the sidecar again, which would redirect
            // to itself, and so on until file descriptors run out.
            rt.metrics.connection("loop_refused");
            tracing::warn!(%remote, %dst, "refused a connection whose original destination is the sidecar itself");
            return Dispatched::Handled;
        }
        let outbound = &rt.config.outbound;
        if let Some(dst) = redirected
            && outbound.opaque_ports.contains(&dst.port())
        {
            rt.metrics.connection("opaque");
            drop(rt);
            opaque::proxy(stream, dst, limits.tunnel_idle_timeout).await;
            return Dispatched::Handled;
        }
        let detected = match detect::detect(&stream, outbound.detect_timeout).await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(%remote, error = %e, "connection failed during protocol detection");
                return Dispatched::Handled;
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
                opaque::proxy(stream, dst, limits.tunnel_idle_timeout).await;
                Dispatched::Handled
            }
            (Detected::Opaque, None) => {
                tracing::debug!(%remote, "non-HTTP connection to the outbound port without an original destination; closing");
                Dispatched::Handled
            }
            (_, dst) => Dispatched::Http {
                stream,
                handler: Outbound {
                    runtime: self.runtime,
                    original_dst: dst,
                },
            },
        }
    }
}
