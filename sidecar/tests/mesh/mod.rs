//! Sidecars with workload identities for the mTLS tests: a test CA (shared
//! with proxy-core's tests), sidecars bound with a credentials watch, and a
//! raw TLS client for what a non-mesh or hostile client would send.

#![allow(dead_code, unreachable_pub)]

#[path = "../../../proxy-core/tests/mtls_support/mod.rs"]
pub mod ca;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use proxy_core::identity::{CredentialsSender, credentials_channel};
use proxy_core::shutdown;
use rustls_pki_types::ServerName;
use sidecar::{Sidecar, SidecarConfig};
use tokio::net::TcpStream;

use crate::support::{Got, Running};

pub const TD: &str = "spiffe://weir.local/ns/default/sa";

pub fn id(account: &str) -> String {
    format!("{TD}/{account}")
}

/// A running sidecar and the sender that rotates its credentials.
pub struct Meshed {
    pub running: Running,
    pub creds: CredentialsSender,
}

/// Starts a sidecar from `yaml` with credentials for `account` from `ca`.
pub async fn start_meshed(yaml: &str, ca: &ca::TestCa, account: &str) -> Meshed {
    let (tx, rx) = credentials_channel();
    tx.send_replace(Some(ca.credentials(&id(account))));
    let cfg = SidecarConfig::from_yaml(yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let sc = Sidecar::bind_with_credentials(cfg, Some(rx)).await.unwrap();
    let running = run(sc);
    Meshed { running, creds: tx }
}

pub fn run(sc: Sidecar) -> Running {
    let (inbound, outbound, admin) = (sc.inbound_addr(), sc.outbound_addr(), sc.admin_addr());
    let (trigger, signal) = shutdown::channel();
    let task = tokio::spawn(sc.serve(signal));
    Running::new(inbound, outbound, admin, trigger, task)
}

/// A sidecar config: the app at `app`, `services` and `inbound_extra` as
/// YAML already indented for their sections.
pub fn yaml(app: SocketAddr, inbound_extra: &str, services: &str) -> String {
    let services = if services.is_empty() {
        "  {}\n"
    } else {
        services
    };
    format!(
        "service: test\ninbound:\n  address: 127.0.0.1:0\n  app: {app}\n{inbound_extra}outbound:\n  address: 127.0.0.1:0\nservices:\n{services}admin:\n  address: 127.0.0.1:0\nshutdown: {{ drain: 5s }}\n"
    )
}

/// One HTTP/1.1 request over a fresh TLS connection made with `cfg` (a
/// refused certificate shows as an error: with TLS 1.3 the server's verdict
/// arrives after the client's handshake, on the first read).
pub async fn tls_request(
    addr: SocketAddr,
    cfg: rustls::ClientConfig,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Got, String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("http: {e}"))?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "payment");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .map_err(|e| format!("request: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Got {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
