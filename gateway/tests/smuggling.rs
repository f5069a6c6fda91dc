//! Request smuggling over raw HTTP/1.1 bytes: whatever framing games a
//! client plays, the gateway and its upstream never disagree on where one
//! request ends.
//!
//! For each variant the client sends one request whose framing is ambiguous
//! or malformed, followed by the bytes of a second, smuggled request. The
//! properties checked:
//!
//! - the client gets exactly one response on that connection, and the
//!   connection is closed after it (RFC 9112 §6.1 and §6.3: an ambiguous or
//!   unparseable framing ends the connection);
//! - the smuggled request never reaches the upstream;
//! - a request that is forwarded reaches the upstream framed one way only
//!   (never `Content-Length` and `Transfer-Encoding` together).

mod support;

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use support::*;

/// What the upstream received: (path, content-length?, transfer-encoding?).
type Seen = Arc<Mutex<Vec<(String, bool, bool)>>>;

async fn recording_upstream() -> (Upstream, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let up = start_upstream(move |req: Request<Incoming>| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let _ = body.collect().await;
            log.lock().expect("log").push((
                parts.uri.path().to_owned(),
                parts.headers.contains_key(http::header::CONTENT_LENGTH),
                parts.headers.contains_key(http::header::TRANSFER_ENCODING),
            ));
            Response::new(full("ok"))
        }
    })
    .await;
    (up, seen)
}

fn yaml(up: &Upstream) -> String {
    config(&format!(
        "upstreams:
  app: {{ endpoints: [{}] }}
routes:
  - name: app
    match: {{ path_prefix: / }}
    upstream: app
",
        up.addr
    ))
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n";

/// Framing variants, each followed on the wire by [`SMUGGLED`].
fn variants() -> Vec<(&'static str, String)> {
    let tail = format!("0\r\n\r\n{SMUGGLED}");
    vec![
        (
            "content-length and chunked",
            format!(
                "POST /a HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{tail}",
                tail.len()
            ),
        ),
        (
            "chunked then content-length",
            format!(
                "POST /a HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n{tail}"
            ),
        ),
        (
            "two different content-lengths",
            format!(
                "POST /a HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
        ),
        (
            "content-length list",
            format!(
                "POST /a HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0, {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
        ),
        (
            "chunked not last",
            format!(
                "POST /a HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n{tail}"
            ),
        ),
        (
            "unknown coding",
            format!(
                "POST /a HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: xchunked\r\n\r\n{tail}"
            ),
        ),
        (
            "chunk size overflow",
            format!(
                "POST /a HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nx\r\n{tail}"
            ),
        ),
        (
            "chunk size not hex",
            format!(
                "POST /a HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n{tail}"
            ),
        ),
        (
            "header folded onto transfer-encoding",
            format!(
                "POST /a HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\n{tail}"
            ),
        ),
        (
            "space before colon",
            format!(
                "POST /a HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n{tail}"
            ),
        ),
    ]
}

/// Writes `bytes` and reads until the gateway closes the connection
/// (bounded by the support module's cap).
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(bytes).await.expect("write");
    let mut got = Vec::new();
    within("the gateway to close the connection", async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn no_framing_variant_smuggles_a_request_past_the_gateway() {
    let (up, seen) = recording_upstream().await;
    let gw = TestGateway::start(&yaml(&up)).await;
    for (name, bytes) in variants() {
        seen.lock().expect("log").clear();
        let got = exchange(gw.addr(), bytes.as_bytes()).await;
        let responses = got.matches("HTTP/1.1 ").count();
        assert_eq!(responses, 1, "{name}: one response, then close:\n{got}");
        let forwarded = seen.lock().expect("log").clone();
        assert!(
            forwarded.iter().all(|(path, _, _)| path != "/smuggled"),
            "{name}: the smuggled request reached the upstream: {forwarded:?}"
        );
        assert!(
            forwarded.iter().all(|(_, cl, te)| !(*cl && *te)),
            "{name}: the upstream got both framings: {forwarded:?}"
        );
    }
}
