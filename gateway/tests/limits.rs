//! Connection limits: a slow request head is cut off (slowloris), an idle
//! keep-alive connection is closed, and `max_connections` holds further
//! clients back until a slot frees.

mod support;

use std::time::Duration;

use http::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

fn yaml(up: &Upstream, limits: &str) -> String {
    config(&format!(
        "limits:\n{limits}upstreams:\n  svc: {{ endpoints: [{}] }}\nroutes:\n  - name: r\n    match: {{ path_prefix: / }}\n    upstream: svc\n",
        up.addr
    ))
}

/// Reads until the peer closes; returns what it sent.
async fn read_until_closed(what: &str, tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    within(what, async {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    got
}

#[tokio::test]
async fn slow_request_head_is_cut_off() {
    let up = echo_upstream("svc").await;
    let gw = TestGateway::start(&yaml(
        &up,
        "  header_read_timeout: 1s\n  idle_timeout: 1h\n",
    ))
    .await;

    let mut tcp = TcpStream::connect(gw.addr()).await.unwrap();
    tcp.write_all(b"GET /slow HTTP/1.1\r\nHost: gw\r\nX-Partial: ")
        .await
        .unwrap();
    let got = read_until_closed("the gateway cuts off a partial head", &mut tcp).await;
    assert!(
        !String::from_utf8_lossy(&got).contains(" 200 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(
        up.requests(),
        0,
        "the half request never reached the upstream"
    );

    // A client that sends nothing at all is cut off too.
    let mut silent = TcpStream::connect(gw.addr()).await.unwrap();
    let _ = read_until_closed("the gateway cuts off a silent client", &mut silent).await;

    // A complete head within the limit is served.
    assert_eq!(get(&gw.url("/fine")).await.status, 200);
}

async fn open(addr: std::net::SocketAddr) -> (SendRequest<TestBody>, JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, task)
}

async fn request(sender: &mut SendRequest<TestBody>, path: &str) -> Reply {
    let req = Request::get(path)
        .header("host", "gw")
        .body(empty())
        .unwrap();
    read_reply(sender.send_request(req).await.expect("response")).await
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed() {
    let up = echo_upstream("svc").await;
    let gw = TestGateway::start(&yaml(
        &up,
        "  header_read_timeout: 1h\n  idle_timeout: 1s\n",
    ))
    .await;
    let (mut sender, conn) = open(gw.addr()).await;
    assert_eq!(request(&mut sender, "/one").await.status, 200);
    // The gateway closes the connection: hyper's connection task ends.
    within("the idle connection is closed", conn).await.unwrap();
    assert!(sender.ready().await.is_err(), "the connection is gone");
}

#[tokio::test]
async fn max_connections_holds_back_extra_clients() {
    let up = echo_upstream("svc").await;
    let gw = TestGateway::start(&yaml(&up, "  max_connections: 2\n")).await;
    let (mut first, first_conn) = open(gw.addr()).await;
    let (mut second, _second_conn) = open(gw.addr()).await;
    assert_eq!(request(&mut first, "/1").await.status, 200);
    assert_eq!(request(&mut second, "/2").await.status, 200);

    // The third connects (kernel backlog) but is not served while both slots are taken.
    let (mut third, _third_conn) = open(gw.addr()).await;
    let pending = tokio::spawn(async move { request(&mut third, "/3").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pending.is_finished(),
        "a third connection was served with max_connections 2"
    );
    assert_eq!(up.requests(), 2);

    // Closing one frees a slot.
    drop(first);
    first_conn.await.unwrap();
    let r = within("the third connection is served", pending)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(request(&mut second, "/2-again").await.status, 200);
}

#[tokio::test]
async fn oversized_request_head_is_refused() {
    let up = echo_upstream("svc").await;
    let gw = TestGateway::start(&yaml(&up, "  max_header_bytes: 16KiB\n")).await;
    let mut tcp = TcpStream::connect(gw.addr()).await.unwrap();
    let big = "x".repeat(64 * 1024);
    let head = format!("GET /big HTTP/1.1\r\nHost: gw\r\nX-Big: {big}\r\n\r\n");
    // The gateway may answer and close before it has read everything.
    let _ = tcp.write_all(head.as_bytes()).await;
    let got = read_until_closed("the oversized head is refused", &mut tcp).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert_eq!(up.requests(), 0);

    // A head under the limit passes.
    let r = get_with(&gw.url("/ok"), &[("x-fine", &"y".repeat(4 * 1024))]).await;
    assert_eq!(r.status, 200);
}
