//! Protocol upgrades (`101 Switching Protocols`): once both sides have switched,
//! the proxy becomes a byte tunnel between the client and the upstream.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Spawns the tunnel between the client's and the upstream's upgraded
/// connections. The tunnel lives apart from the config snapshot and the HTTP
/// connection that carried the handshake, so a config reload never cuts it.
///
/// It does not run forever when both sides go quiet: the client connection
/// underneath `client` is the serving function's [`crate::server::TunnelIo`],
/// armed when the handler answered `101`, so a read or write that has waited
/// `limits.tunnel_idle_timeout` since the last byte fails and ends the copy,
/// closing both sides. Bytes in either direction keep it open.
pub fn tunnel_upgrade(client: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "upgraded tunnel closed with an error");
        }
    });
}
