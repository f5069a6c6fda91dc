//! A server on `127.0.0.1:0` served by `proxy_core::server`, a test handler,
//! and raw HTTP/1.1 helpers (the point is what the wire carries).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use proxy_core::body::{self, Body, BodyReadTimeout, ClientBodyError};
use proxy_core::server::{
    ConnInfo, ConnLimits, Dispatch, Handler, RequestBody, ServeOptions, serve, serve_with,
};
use proxy_core::shutdown::{self, ShutdownTrigger};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Small, distinct limits so each test can tell which bound fired.
pub fn limits() -> ConnLimits {
    ConnLimits {
        max_connections: 100,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        request_idle_timeout: Duration::from_secs(300),
        body_read_timeout: Duration::from_secs(30),
        tunnel_idle_timeout: Duration::from_secs(120),
        max_header_bytes: 16 * 1024,
        max_headers: 20,
    }
}

/// [`limits`] changed by `f`.
pub fn limits_with(f: impl FnOnce(&mut ConnLimits)) -> ConnLimits {
    let mut l = limits();
    f(&mut l);
    l
}

/// `/` answers `ok`; `/body` reads the whole body (408 when the body read
/// times out); `/hang` never answers (an upstream without a timeout);
/// `/upgrade` switches to an echo tunnel.
#[derive(Clone)]
pub struct TestHandler;

impl Handler for TestHandler {
    async fn handle(self, mut req: Request<RequestBody>, _conn: Arc<ConnInfo>) -> Response<Body> {
        match req.uri().path() {
            "/body" => match req.into_body().collect().await {
                Ok(b) => text(StatusCode::OK, format!("{} bytes", b.to_bytes().len())),
                Err(e) if e.is::<BodyReadTimeout>() => {
                    text(StatusCode::REQUEST_TIMEOUT, e.to_string())
                }
                Err(e) if e.is::<ClientBodyError>() => text(
                    StatusCode::BAD_REQUEST,
                    format!("the client's request body failed: {e}"),
                ),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            },
            "/hang" => std::future::pending().await,
            "/upgrade" => {
                let on = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let Ok(up) = on.await else { return };
                    let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "echo")
                    .body(body::empty())
                    .unwrap()
            }
            _ => text(StatusCode::OK, "ok".into()),
        }
    }
}

fn text(status: StatusCode, s: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(body::full(s))
        .unwrap()
}

pub struct Server {
    pub addr: SocketAddr,
    pub trigger: Option<ShutdownTrigger>,
    pub task: JoinHandle<()>,
}

pub async fn start(limits: ConnLimits) -> Server {
    start_with(limits, None::<Never>).await
}

/// Starts a server; with `dispatch`, through `serve_with`.
pub async fn start_with<D: Dispatch>(limits: ConnLimits, dispatch: Option<D>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, stop) = shutdown::channel();
    let opts = ServeOptions {
        limits,
        drain: Duration::from_secs(5),
        ..ServeOptions::default()
    };
    let task = match dispatch {
        Some(d) => tokio::spawn(serve_with(listener, opts, d, stop)),
        None => tokio::spawn(serve(listener, opts, TestHandler, stop)),
    };
    Server {
        addr,
        trigger: Some(trigger),
        task,
    }
}

/// A dispatch type never constructed (for `start`).
#[derive(Clone)]
pub enum Never {}

impl Dispatch for Never {
    type Handler = TestHandler;
    async fn dispatch(
        self,
        _s: TcpStream,
        _r: SocketAddr,
        _l: &ConnLimits,
    ) -> proxy_core::server::Dispatched<TestHandler> {
        match self {}
    }
}

/// One response read off the wire.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// Reads one response (Content-Length bodies only); `None` if the peer
/// closed first or sent nothing for [`PATIENCE`].
pub async fn read_response(tcp: &mut TcpStream) -> Option<Raw> {
    tokio::time::timeout(PATIENCE, read_response_now(tcp))
        .await
        .ok()
        .flatten()
}

async fn read_response_now(tcp: &mut TcpStream) -> Option<Raw> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.get(9..12)?.parse().ok()?;
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some(Raw { status, head, body })
}

/// How long (paused time) a test waits for a bound before failing.
pub const PATIENCE: Duration = Duration::from_secs(4 * 3600);

/// Waits until the peer closes the connection; returns anything it sent.
/// Fails if it stays open for [`PATIENCE`].
pub async fn closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let read_all = async {
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read_all)
        .await
        .expect("the connection is still open after hours");
    got
}

/// A GET with `extra` header lines.
pub fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n")
}

/// Sends `req` and reads the response.
pub async fn exchange(tcp: &mut TcpStream, req: &str) -> Option<Raw> {
    tcp.write_all(req.as_bytes()).await.ok()?;
    read_response(tcp).await
}

/// Opens an HTTP/2 connection with raw frames, sends `GET /` (host `host`),
/// then PINGs every `every` (and acknowledges the server's SETTINGS and
/// PINGs) until the server closes the connection. Returns the time from the
/// end of the response to the close. Raw frames, because hyper's client
/// keep-alive misjudges PING round trips under paused time.
pub async fn h2_pinging_lifetime(
    addr: std::net::SocketAddr,
    host: &str,
    every: std::time::Duration,
) -> std::time::Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    // HPACK: :method GET, :scheme http, :path /, :authority <host> (literal).
    let mut block = vec![0x82, 0x86, 0x84, 0x41, host.len() as u8];
    block.extend_from_slice(host.as_bytes());
    out.extend(frame(0x1, 0x4 | 0x1, 1, &block));
    tcp.write_all(&out).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let reader = tokio::spawn(async move {
        let mut answered = None;
        loop {
            let mut head = [0u8; 9];
            if rd.read_exact(&mut head).await.is_err() {
                return answered;
            }
            let len =
                (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            if rd.read_exact(&mut payload).await.is_err() {
                return answered;
            }
            let (kind, flags) = (head[3], head[4]);
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            match kind {
                0x4 if flags & 0x1 == 0 => drop(tx.send(frame(0x4, 0x1, 0, &[]))),
                0x6 if flags & 0x1 == 0 => drop(tx.send(frame(0x6, 0x1, 0, &payload))),
                0x0 | 0x1 if stream == 1 && flags & 0x1 != 0 => {
                    answered = Some(tokio::time::Instant::now());
                }
                _ => {}
            }
        }
    });
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut n = 0u64;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = tick.tick() => {
                n += 1;
                if wr.write_all(&frame(0x6, 0, 0, &n.to_be_bytes())).await.is_err() { break; }
            }
            f = rx.recv() => match f {
                Some(f) => if wr.write_all(&f).await.is_err() { break; },
                None => break,
            },
        }
    }
    let answered = tokio::time::timeout(PATIENCE, reader)
        .await
        .expect("the connection is still open after hours")
        .unwrap()
        .expect("the request was answered");
    answered.elapsed()
}
