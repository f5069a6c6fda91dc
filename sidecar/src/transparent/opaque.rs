//! Opaque TCP: bytes in both directions, unchanged, to the original destination.

use std::net::SocketAddr;
use std::time::Duration;

use proxy_core::server::copy_bidirectional_idle;
use tokio::net::TcpStream;

/// How long connecting to the original destination may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Proxies `client` to `dst` until either side closes, or until no byte has
/// moved either way for `idle` (`limits.tunnel_idle_timeout`).
pub(crate) async fn proxy(client: TcpStream, dst: SocketAddr, idle: Duration) {
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dst)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%dst, error = %e, "opaque connect failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%dst, "opaque connect timed out");
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    match copy_bidirectional_idle(client, upstream, idle).await {
        Ok((up, down)) => tracing::debug!(%dst, up, down, "opaque connection closed"),
        Err(e) => tracing::debug!(%dst, error = %e, "opaque connection ended with an error"),
    }
}
