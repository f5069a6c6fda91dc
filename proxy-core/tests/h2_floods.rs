//! HTTP/2 abuse that costs a client little and a server much: the rapid
//! reset of streams (CVE-2023-44487) and the CONTINUATION flood
//! (CVE-2024-27316 and kin). The serving function must end such a
//! connection with GOAWAY `ENHANCE_YOUR_CALM`, hand the handler only a
//! bounded number of the requests, and keep serving everyone else.
//!
//! The client writes raw frames on a real socket; the point is what the wire
//! carries, which no well-behaved client library would send.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response};
use proxy_core::body::Body;
use proxy_core::server::{ConnInfo, Handler, RequestBody, ServeOptions, serve};
use proxy_core::shutdown;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK for `GET http://x/`: three static-table entries and a literal
/// `:authority`.
const GET_BLOCK: &[u8] = &[0x82, 0x86, 0x84, 0x01, 0x01, b'x'];

/// HPACK for one literal header `x-pad: <n bytes>` (new name, not indexed).
fn literal_header(n: usize) -> Vec<u8> {
    assert!(n < 127);
    let mut b = vec![0x00, 5];
    b.extend_from_slice(b"x-pad");
    b.push(u8::try_from(n).unwrap());
    b.extend(std::iter::repeat_n(b'a', n));
    b
}

/// Counts the requests the handler is given.
#[derive(Clone)]
struct Counting(Arc<AtomicUsize>);

impl Handler for Counting {
    async fn handle(self, _req: Request<RequestBody>, _conn: Arc<ConnInfo>) -> Response<Body> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Response::new(proxy_core::body::full("ok"))
    }
}

struct H2Server {
    addr: std::net::SocketAddr,
    handled: Arc<AtomicUsize>,
    _trigger: shutdown::ShutdownTrigger,
}

async fn start_h2() -> H2Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let (trigger, shutdown) = shutdown::channel();
    let opts = ServeOptions {
        limits: limits(),
        drain: Duration::from_secs(1),
        ..ServeOptions::default()
    };
    tokio::spawn(serve(listener, opts, Counting(handled.clone()), shutdown));
    H2Server {
        addr,
        handled,
        _trigger: trigger,
    }
}

/// What the server said on the connection, frame by frame.
#[derive(Debug, PartialEq)]
enum Seen {
    GoAway(u32),
    PingAck(u64),
    Other(u8),
    Closed,
}

async fn next_frame(tcp: &mut tokio::net::tcp::OwnedReadHalf) -> Seen {
    let mut head = [0u8; 9];
    if tcp.read_exact(&mut head).await.is_err() {
        return Seen::Closed;
    }
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0; len];
    if tcp.read_exact(&mut payload).await.is_err() {
        return Seen::Closed;
    }
    match head[3] {
        GOAWAY => Seen::GoAway(u32::from_be_bytes(payload[4..8].try_into().unwrap())),
        PING if head[4] & ACK != 0 => {
            Seen::PingAck(u64::from_be_bytes(payload[..8].try_into().unwrap()))
        }
        kind => Seen::Other(kind),
    }
}

/// Reads until a GOAWAY, the ack of PING `n`, or the end of the connection.
async fn until_goaway_or_ping(tcp: &mut tokio::net::tcp::OwnedReadHalf, n: u64) -> Seen {
    loop {
        match next_frame(tcp).await {
            Seen::Other(_) => continue,
            Seen::PingAck(got) if got != n => continue,
            seen => return seen,
        }
    }
}

async fn open(
    addr: std::net::SocketAddr,
) -> (
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = tcp.into_split();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    hello.extend(frame(SETTINGS, ACK, 0, &[]));
    w.write_all(&hello).await.unwrap();
    (r, w)
}

/// A well-behaved HTTP/2 request on a fresh connection gets its answer.
async fn still_serves(addr: std::net::SocketAddr) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(
            Request::get("http://x/")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn rapidly_reset_streams_end_the_connection_with_enhance_your_calm() {
    const BATCHES: u64 = 20;
    const PER_BATCH: u32 = 100;
    let server = start_h2().await;
    let (mut r, mut w) = open(server.addr).await;
    let mut stream = 1u32;
    let mut sent = 0u32;
    let mut verdict = None;
    // Each batch opens and at once cancels PER_BATCH streams in one write, as
    // an attacker would, then pings: the server answers frames in order, so
    // the ping's ack (or a GOAWAY before it) says what the server made of the
    // batch, with no timing involved. (A client that waits for a round trip
    // after every 20 resets is only as costly as one sending requests.)
    for n in 0..BATCHES {
        let mut batch = Vec::new();
        for _ in 0..PER_BATCH {
            batch.extend(frame(HEADERS, END_STREAM | END_HEADERS, stream, GET_BLOCK));
            batch.extend(frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes()));
            stream += 2;
            sent += 1;
        }
        batch.extend(frame(PING, 0, 0, &n.to_be_bytes()));
        if w.write_all(&batch).await.is_err() {
            verdict = Some(next_frame(&mut r).await);
            break;
        }
        match until_goaway_or_ping(&mut r, n).await {
            Seen::PingAck(_) => continue,
            other => {
                verdict = Some(other);
                break;
            }
        }
    }
    assert_eq!(
        verdict,
        Some(Seen::GoAway(ENHANCE_YOUR_CALM)),
        "after {sent} streams opened and reset"
    );
    let handled = server.handled.load(Ordering::SeqCst);
    assert!(
        handled < 200,
        "the handler ran {handled} times for {sent} cancelled streams"
    );
    still_serves(server.addr).await;
}

#[tokio::test]
async fn an_endless_header_block_ends_the_connection_with_enhance_your_calm() {
    let server = start_h2().await;
    let (mut r, mut w) = open(server.addr).await;
    // A header block that never ends: HEADERS without END_HEADERS, then
    // CONTINUATION frames, each with one small header. The server must not
    // buffer them until the client stops.
    let reader = tokio::spawn(async move {
        loop {
            match next_frame(&mut r).await {
                Seen::Other(_) | Seen::PingAck(_) => continue,
                seen => return seen,
            }
        }
    });
    let writer = tokio::spawn(async move {
        let mut frames = 0usize;
        let _ = w.write_all(&frame(HEADERS, END_STREAM, 1, GET_BLOCK)).await;
        // At most 16 MB in all: far more than any header limit allows.
        for _ in 0..140_000 {
            if w.write_all(&frame(CONTINUATION, 0, 1, &literal_header(100)))
                .await
                .is_err()
            {
                break;
            }
            frames += 1;
        }
        frames
    });
    let verdict = reader.await.unwrap();
    writer.abort();
    assert_eq!(verdict, Seen::GoAway(ENHANCE_YOUR_CALM));
    assert_eq!(server.handled.load(Ordering::SeqCst), 0);
    still_serves(server.addr).await;
}
