//! Reading other proxies' dashboards (the gateway's mesh view reads each
//! sidecar's `/dashboard/api/state`), the way Linkerd viz reads its proxies.
//!
//! Each proxy keeps its own figures; a peer is asked only while a page is
//! open (once per tick), each request is bounded in time and size, and at
//! most [`CONCURRENCY`] are in flight, so a slow or dead peer costs one
//! timeout and never piles up requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Peer requests in flight at once.
pub const CONCURRENCY: usize = 4;
/// Largest peer answer read.
const MAX_BODY: usize = 1 << 20;
/// Where a peer's dashboard state lives.
pub const STATE_PATH: &str = "/dashboard/api/state";

/// A proxy whose dashboard state this one shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Peer {
    pub name: String,
    /// `http://host:port` of its admin listener.
    pub url: String,
}

/// What a peer answered, or why it did not.
#[derive(Clone, Debug, Serialize)]
pub struct PeerState {
    pub name: String,
    pub url: String,
    pub state: Option<Value>,
    pub error: Option<String>,
}

/// Checks a peer URL: `http://host:port` with nothing after the authority.
pub fn validate_url(url: &str) -> Result<(), String> {
    let uri: Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err("must start with http:// (admin listeners serve plain HTTP)".into());
    }
    if uri.authority().is_none_or(|a| a.port_u16().is_none()) {
        return Err("must name host and port, e.g. http://127.0.0.1:4191".into());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("must have no path: the dashboard's path is added".into());
    }
    Ok(())
}

/// Fetches every peer's state, [`CONCURRENCY`] at a time, each within `timeout`.
pub async fn fetch_all(peers: &[Peer], timeout: Duration) -> Vec<PeerState> {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    join_all(peers.iter().map(|p| {
        let permits = permits.clone();
        async move {
            let _permit = permits.acquire().await;
            let result = tokio::time::timeout(timeout, fetch(&p.url))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
            let (state, error) = match result {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e)),
            };
            PeerState {
                name: p.name.clone(),
                url: p.url.clone(),
                state,
                error,
            }
        }
    }))
    .await
}

async fn fetch(base: &str) -> Result<Value, String> {
    let uri: Uri = format!("{}{STATE_PATH}", base.trim_end_matches('/'))
        .parse()
        .map_err(|e| format!("bad URL: {e}"))?;
    let authority = uri.authority().ok_or("no host")?.clone();
    // The peer's admin listener answers only to its own address (DNS
    // rebinding defence), so the request names the address it reaches: a
    // Kubernetes Service name resolves to a pod, and that pod is asked.
    let addr = tokio::net::lookup_host(authority.as_str())
        .await
        .map_err(|e| format!("resolve: {e}"))?
        .next()
        .ok_or("resolves to no address")?;
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    // Ends with the request: the connection is not reused.
    let conn = tokio::spawn(conn);
    let req = Request::get(uri.path())
        .header(http::header::HOST, addr.to_string())
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    if resp.status() != StatusCode::OK {
        conn.abort();
        return Err(format!("answered {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    conn.abort();
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_plain_http_authorities() {
        assert!(validate_url("http://127.0.0.1:4191").is_ok());
        assert!(validate_url("http://order-sidecar:4191/").is_ok());
        assert!(validate_url("https://x:1").is_err());
        assert!(validate_url("http://x").is_err());
        assert!(validate_url("http://x:1/dashboard").is_err());
        assert!(validate_url("nonsense").is_err());
    }

    #[tokio::test]
    async fn a_dead_peer_is_an_error_not_a_hang() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // Accepts and never answers.
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let peers = [Peer {
            name: "silent".into(),
            url: format!("http://{addr}"),
        }];
        let out = fetch_all(&peers, Duration::from_millis(200)).await;
        assert!(out[0].state.is_none());
        assert!(out[0].error.as_deref().unwrap().contains("no answer"));
    }
}
