//! Opaque TCP: bytes in both directions, unchanged, to the original destination.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

/// How long connecting to the original destination may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Proxies `client` to `dst` until either side closes.
pub(crate) async fn proxy(mut client: TcpStream, dst: SocketAddr) {
    let mut upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dst)).await {
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
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((up, down)) => tracing::debug!(%dst, up, down, "opaque connection closed"),
        Err(e) => tracing::debug!(%dst, error = %e, "opaque connection ended with an error"),
    }
}
