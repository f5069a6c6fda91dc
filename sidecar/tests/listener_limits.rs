//! Every sidecar listener (inbound, outbound, transparent outbound, admin)
//! is served by the shared serving function, so each meets the same limits:
//! a head over `max_header_bytes` is refused and a stalled head is cut off,
//! on the second and third request of a keep-alive connection as on the
//! first, and HTTP/2 PINGs do not keep an idle connection open. The
//! transparent listener is used explicitly (no iptables redirect), which
//! runs without root and still goes through its dispatch step (protocol
//! detection) before HTTP. Paused time, real sockets.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The default `limits.header_read_timeout` and `limits.idle_timeout`.
const HEAD: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(60);

/// The four listeners of a sidecar (transparent outbound from a second one).
async fn listeners() -> (Vec<(&'static str, SocketAddr)>, Running, Running) {
    let app = refused_addr().await;
    let explicit = start_sidecar(&config(app, &[app], "")).await;
    let transparent = start_sidecar(
        &config(app, &[app], "")
            .replace("outbound:\n  address: 127.0.0.1:0\n", "outbound:\n  address: 127.0.0.1:0\n  transparent: true\n"),
    )
    .await;
    let all = vec![
        ("inbound", explicit.inbound),
        ("outbound", explicit.outbound),
        ("transparent", transparent.outbound),
        ("admin", explicit.admin),
    ];
    (all, explicit, transparent)
}

fn request(extra: &str) -> String {
    format!("GET /healthz HTTP/1.1\r\nHost: svc\r\n{extra}\r\n")
}

/// Reads one response head and its Content-Length body; `None` if closed.
async fn response(tcp: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut have = buf.len() - end;
    while have < len {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => have += n,
        }
    }
    Some(head)
}

async fn until_closed(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn every_listener_refuses_an_oversized_head_on_later_requests() {
    let (all, a, b) = listeners().await;
    let big = format!("X-Big: {}\r\n", "x".repeat(70 * 1024));
    for (name, addr) in all {
        for refused_at in [2, 3] {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            for i in 1..refused_at {
                tcp.write_all(request("").as_bytes()).await.unwrap();
                let head = response(&mut tcp).await.unwrap_or_else(|| panic!("{name}: request {i} unanswered"));
                assert!(!head.to_ascii_lowercase().contains("connection: close"), "{name}: {head}");
            }
            let _ = tcp.write_all(request(&big).as_bytes()).await;
            let head = response(&mut tcp).await.unwrap_or_default();
            assert!(head.starts_with("HTTP/1.1 431"), "{name}, request {refused_at}: {head:?}");
        }
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn every_listener_cuts_off_a_stalled_head_on_later_requests() {
    let (all, a, b) = listeners().await;
    for (name, addr) in all {
        for cut_at in [1, 2, 3] {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            for i in 1..cut_at {
                tcp.write_all(request("").as_bytes()).await.unwrap();
                response(&mut tcp).await.unwrap_or_else(|| panic!("{name}: request {i} unanswered"));
            }
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: svc\r\nX-Partial: ").await.unwrap();
            let started = Instant::now();
            let got = until_closed(&mut tcp).await;
            let waited = started.elapsed();
            assert!(!got.contains(" 200 "), "{name}: {got}");
            assert!(
                waited >= HEAD && waited < HEAD + Duration::from_secs(1),
                "{name}, request {cut_at}: cut after {waited:?}"
            );
        }
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn http2_pings_keep_no_listener_open_past_the_idle_timeout() {
    let (all, a, b) = listeners().await;
    for (name, addr) in all {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let resp = sender
            .send_request(http::Request::get("http://svc/healthz").body(Empty::new()).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        resp.into_body().collect().await.unwrap();
        let answered = Instant::now();
        let _ = conn.await;
        let lived = answered.elapsed();
        assert!(
            lived >= IDLE && lived < IDLE + Duration::from_secs(1),
            "{name}: closed {lived:?} after the last response"
        );
    }
    a.stop().await;
    b.stop().await;
}
