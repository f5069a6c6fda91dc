//! The inbound port's first step: mutual TLS or plaintext, told apart by the
//! connection's first byte (a TLS handshake record starts with 0x16).
//!
//! - TLS: terminated with the workload's certificate; a client certificate
//!   is asked for, required in `strict` mode, optional in `permissive` mode
//!   (authorization then decides per request).
//! - Plaintext: served as before in `permissive` mode, closed in `strict`.
//!
//! The configs are built once; they read the latest credentials per
//! handshake. The mode is read per connection, so a reload applies to the
//! next connection.

use std::net::SocketAddr;
use std::sync::Arc;

use proxy_core::mtls::{ClientAuth, looks_like_tls, server_config};
use proxy_core::server::{ConnLimits, Dispatch, Dispatched};
use tokio::net::TcpStream;

use crate::config::mesh::InboundTlsMode;
use crate::inbound::Inbound;
use crate::mesh::Mesh;

#[derive(Clone)]
pub(crate) struct InboundDispatch {
    handler: Inbound,
    /// `None` without an identity: TLS cannot be terminated then.
    configs: Option<Arc<Configs>>,
}

struct Configs {
    optional: Arc<rustls::ServerConfig>,
    required: Arc<rustls::ServerConfig>,
}

impl InboundDispatch {
    pub(crate) fn new(handler: Inbound, mesh: &Mesh) -> Self {
        let build = |auth| server_config(mesh.source().clone(), auth).map(Arc::new);
        let configs = match (
            mesh.meshed(),
            build(ClientAuth::Optional),
            build(ClientAuth::Required),
        ) {
            (true, Ok(optional), Ok(required)) => Some(Arc::new(Configs { optional, required })),
            (true, Err(e), _) | (true, _, Err(e)) => {
                tracing::error!(error = %e, "cannot build the inbound TLS config; TLS clients will be refused");
                None
            }
            (false, _, _) => None,
        };
        Self { handler, configs }
    }
}

impl Dispatch for InboundDispatch {
    type Handler = Inbound;

    async fn dispatch(
        self,
        stream: TcpStream,
        remote: SocketAddr,
        limits: &ConnLimits,
    ) -> Dispatched<Inbound> {
        let (mode, metrics) = {
            let rt = self.handler.runtime.load();
            (rt.config.inbound.tls, rt.metrics.mesh.clone())
        };
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(limits.header_read_timeout, stream.peek(&mut first));
        match peeked.await {
            Ok(Ok(1)) => {}
            // Closed, failed or silent: nothing to serve.
            _ => return Dispatched::Handled,
        }
        if looks_like_tls(first[0]) {
            let Some(configs) = &self.configs else {
                tracing::debug!(%remote, "TLS client on a sidecar without an identity; closing");
                metrics.inbound_connection("refused");
                return Dispatched::Handled;
            };
            metrics.inbound_connection("tls");
            let config = match mode {
                InboundTlsMode::Permissive => configs.optional.clone(),
                InboundTlsMode::Strict => configs.required.clone(),
            };
            return Dispatched::Tls {
                stream,
                handler: self.handler,
                config,
            };
        }
        if mode == InboundTlsMode::Strict {
            tracing::debug!(%remote, "plaintext client refused (inbound.tls.mode: strict)");
            metrics.inbound_connection("refused");
            return Dispatched::Handled;
        }
        metrics.inbound_connection("plaintext");
        Dispatched::Http {
            stream,
            handler: self.handler,
        }
    }
}
