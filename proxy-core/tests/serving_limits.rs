//! The serving function's connection limits: the connection cap, the head
//! deadline, and header size, count and read time on every request of a
//! keep-alive connection, not only the first. Raw bytes on real sockets,
//! paused time.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use proxy_core::server::{ConnLimits, Dispatch, Dispatched, copy_bidirectional_idle};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn big_header(bytes: usize) -> String {
    format!("X-Big: {}\r\n", "x".repeat(bytes))
}

fn many_headers(n: usize) -> String {
    (0..n).map(|i| format!("X-H{i}: v\r\n")).collect()
}

#[tokio::test(start_paused = true)]
async fn oversized_heads_are_refused_on_every_request_of_a_connection() {
    let server = start(limits()).await;
    for refused_at in [2, 3] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        for i in 1..refused_at {
            let ok = exchange(&mut tcp, &get("/", "")).await.unwrap();
            assert_eq!(ok.status, 200, "request {i}");
        }
        let _ = tcp
            .write_all(get("/", &big_header(20 * 1024)).as_bytes())
            .await;
        let refused = read_response(&mut tcp).await.expect("an answer");
        assert_eq!(
            refused.status, 431,
            "request {refused_at}: {}",
            refused.head
        );
        closed(&mut tcp).await;
    }
}

#[tokio::test(start_paused = true)]
async fn too_many_headers_are_refused_on_every_request_of_a_connection() {
    let server = start(limits()).await;
    for refused_at in [2, 3] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        for i in 1..refused_at {
            let ok = exchange(&mut tcp, &get("/", &many_headers(19)))
                .await
                .unwrap();
            assert_eq!(ok.status, 200, "request {i}: 20 headers are allowed");
        }
        let refused = exchange(&mut tcp, &get("/", &many_headers(21)))
            .await
            .unwrap();
        assert_eq!(
            refused.status, 431,
            "request {refused_at}: {}",
            refused.head
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_head_is_cut_off_on_every_request_of_a_connection() {
    let server = start(limits()).await;
    for cut_at in [1, 2, 3] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        for i in 1..cut_at {
            assert_eq!(
                exchange(&mut tcp, &get("/", "")).await.unwrap().status,
                200,
                "{i}"
            );
        }
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nX-Partial: ")
            .await
            .unwrap();
        let started = Instant::now();
        let got = closed(&mut tcp).await;
        let waited = started.elapsed();
        assert!(
            !String::from_utf8_lossy(&got).contains(" 200 "),
            "request {cut_at} was served: {}",
            String::from_utf8_lossy(&got)
        );
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
            "request {cut_at}: cut after {waited:?}, header_read_timeout is 10s"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_cut_off_at_the_head_deadline() {
    let server = start(limits()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    assert!(closed(&mut tcp).await.is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_connection_cap_holds_extra_clients_back() {
    let server = start(ConnLimits {
        max_connections: 1,
        ..limits()
    })
    .await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(
        exchange(&mut first, &get("/", "")).await.unwrap().status,
        200
    );
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    second.write_all(get("/", "").as_bytes()).await.unwrap();
    let held = tokio::time::timeout(Duration::from_secs(5), read_response(&mut second)).await;
    assert!(
        held.is_err(),
        "a second connection was served with max_connections 1"
    );
    drop(first);
    let served = read_response(&mut second)
        .await
        .expect("served once the slot frees");
    assert_eq!(served.status, 200);
}

/// A dispatch step that serves connections starting with `E` as an echo
/// tunnel and everything else as HTTP.
#[derive(Clone)]
struct EchoOrHttp;

impl Dispatch for EchoOrHttp {
    type Handler = TestHandler;

    async fn dispatch(
        self,
        stream: TcpStream,
        _remote: SocketAddr,
        limits: &ConnLimits,
    ) -> Dispatched<TestHandler> {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await.is_ok() && first[0] != b'E' {
            return Dispatched::Http {
                stream,
                handler: TestHandler,
            };
        }
        let (a, b) = tokio::io::duplex(1024);
        let echo = tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(b);
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
        let _ = copy_bidirectional_idle(stream, a, limits.tunnel_idle_timeout).await;
        echo.abort();
        Dispatched::Handled
    }
}

#[tokio::test(start_paused = true)]
async fn a_dispatch_step_shares_the_cap_and_its_tunnels_are_bounded() {
    let server = start_with(
        ConnLimits {
            max_connections: 1,
            ..limits()
        },
        Some(EchoOrHttp),
    )
    .await;
    // An opaque connection holds the only slot...
    let mut opaque = TcpStream::connect(server.addr).await.unwrap();
    opaque.write_all(b"Echo").await.unwrap();
    let mut got = [0u8; 4];
    opaque.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"Echo");
    let echoed_at = Instant::now();
    // ...so HTTP waits...
    let mut http = TcpStream::connect(server.addr).await.unwrap();
    http.write_all(get("/", "").as_bytes()).await.unwrap();
    // ...until the quiet tunnel is closed at tunnel_idle_timeout.
    assert!(closed(&mut opaque).await.is_empty());
    assert_eq!(echoed_at.elapsed(), Duration::from_secs(120));
    // HTTP through the step gets the shared limits: served, then a big head refused.
    assert_eq!(read_response(&mut http).await.unwrap().status, 200);
    let refused = exchange(&mut http, &get("/", &big_header(20 * 1024)))
        .await
        .unwrap();
    assert_eq!(refused.status, 431);
}

/// What hyper itself writes when it refuses a head: the status line, a
/// `content-length: 0` and a date, no body, then it closes. There is no hook
/// to change it (see docs/operations.md); this test pins what is sent so the
/// document stays true.
#[tokio::test(start_paused = true)]
async fn hypers_own_refusals_are_an_empty_status() {
    let server = start(limits()).await;
    for (req, status) in [
        (get("/", &big_header(20 * 1024)), 431),
        (
            "GET / HTTP/1.1\r\nHost: test\r\nBad Header: x\r\n\r\n".to_owned(),
            400,
        ),
        ("GET /\x7f HTTP/1.1\r\nHost: test\r\n\r\n".to_owned(), 400),
    ] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let _ = tcp.write_all(req.as_bytes()).await;
        let raw = read_response(&mut tcp).await.expect("an answer");
        assert_eq!(raw.status, status, "{}", raw.head);
        let head = raw.head.to_ascii_lowercase();
        assert!(head.contains("content-length: 0"), "{head}");
        assert!(!head.contains("content-type"), "{head}");
        assert!(raw.body.is_empty());
        closed(&mut tcp).await;
    }
}

/// A malformed chunked body reaches the handler as a client body error, so
/// a forwarder can answer 400 instead of blaming the upstream.
#[tokio::test(start_paused = true)]
async fn a_malformed_chunked_body_is_a_client_error() {
    let server = start(limits()).await;
    for bad in ["zz\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n5\r\nhel"] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let req =
            format!("POST /body HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n{bad}");
        tcp.write_all(req.as_bytes()).await.unwrap();
        if bad.ends_with("hel") {
            // The connection closes mid-body.
            tcp.shutdown().await.unwrap();
        }
        let resp = read_response(&mut tcp).await.expect("an answer");
        assert_eq!(
            resp.status,
            400,
            "{bad:?}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        assert!(
            String::from_utf8_lossy(&resp.body).contains("client's request body failed"),
            "{}",
            String::from_utf8_lossy(&resp.body)
        );
    }
}

/// Drain waits for connections a dispatch step handles itself (an opaque
/// tunnel), then cuts them at the drain deadline.
#[tokio::test(start_paused = true)]
async fn drain_waits_for_handled_connections_then_cuts_them() {
    let mut server = start_with(limits(), Some(EchoOrHttp)).await;
    let mut opaque = TcpStream::connect(server.addr).await.unwrap();
    opaque.write_all(b"E").await.unwrap();
    let mut got = [0u8; 1];
    opaque.read_exact(&mut got).await.unwrap();
    let stopped = Instant::now();
    server.trigger.take().unwrap().trigger();
    // The tunnel still works while draining...
    tokio::time::sleep(Duration::from_secs(2)).await;
    opaque.write_all(b"E").await.unwrap();
    opaque.read_exact(&mut got).await.unwrap();
    assert!(
        !server.task.is_finished(),
        "serve returned with a tunnel open"
    );
    // ...and is cut when the 5 s drain deadline passes.
    (&mut server.task).await.unwrap();
    assert_eq!(stopped.elapsed(), Duration::from_secs(5));
    assert!(closed(&mut opaque).await.is_empty());
}
