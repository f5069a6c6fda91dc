//! Every connection and every request ends in bounded time, whatever the
//! protocol does: HTTP/2 PINGs do not keep an idle connection open, a
//! stalled request body fails, a request that never gets an answer is cut
//! at `request_idle_timeout`, and a quiet upgraded tunnel is closed.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn within(d: Duration, lo: u64) -> bool {
    d >= Duration::from_secs(lo) && d < Duration::from_secs(lo + 1)
}

#[tokio::test(start_paused = true)]
async fn http2_pings_do_not_keep_an_idle_connection_open() {
    let server = start(limits()).await;
    // The client PINGs every 5 s and answers the server's PINGs (every 30 s).
    let lived = h2_pinging_lifetime(server.addr, "test", Duration::from_secs(5)).await;
    assert!(
        within(lived, 60),
        "closed {lived:?} after the last response; idle_timeout is 60s"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_http1_connection_is_closed_after_the_idle_timeout() {
    let server = start(support::limits_with(|l| {
        l.header_read_timeout = Duration::from_secs(3600)
    }))
    .await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(exchange(&mut tcp, &get("/", "")).await.unwrap().status, 200);
    let answered = Instant::now();
    closed(&mut tcp).await;
    assert!(within(answered.elapsed(), 60), "{:?}", answered.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_request_body_ends_after_the_body_read_timeout() {
    let server = start(limits()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"POST /body HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    let sent = Instant::now();
    let resp = read_response(&mut tcp).await.expect("an answer");
    assert_eq!(resp.status, 408, "{}", String::from_utf8_lossy(&resp.body));
    assert!(within(sent.elapsed(), 30), "{:?}", sent.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_body_is_not_cut() {
    let server = start(limits()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"POST /body HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n")
        .await
        .unwrap();
    // 10 bytes, one every 20 s: 200 s in all, never 30 s without data.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(20)).await;
        tcp.write_all(b"x").await.unwrap();
    }
    let resp = read_response(&mut tcp).await.expect("an answer");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"10 bytes");
}

#[tokio::test(start_paused = true)]
async fn a_request_that_never_gets_an_answer_is_cut_at_the_request_idle_timeout() {
    let server = start(limits()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(get("/hang", "").as_bytes()).await.unwrap();
    let sent = Instant::now();
    assert!(closed(&mut tcp).await.is_empty());
    assert!(within(sent.elapsed(), 300), "{:?}", sent.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_quiet_upgraded_tunnel_is_closed() {
    let server = start(limits()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let switched = exchange(
        &mut tcp,
        &get("/upgrade", "Connection: upgrade\r\nUpgrade: echo\r\n"),
    )
    .await
    .unwrap();
    assert_eq!(switched.status, 101);
    // Traffic keeps the tunnel open well past its bound...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(100)).await;
        tcp.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        tcp.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
    }
    // ...silence closes it one tunnel_idle_timeout after the last byte.
    let last = Instant::now();
    assert!(closed(&mut tcp).await.is_empty());
    assert!(within(last.elapsed(), 120), "{:?}", last.elapsed());
}
