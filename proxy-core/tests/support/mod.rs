//! A server on `127.0.0.1:0` served by `proxy_core::server`, a test handler,
//! and raw HTTP/1.1 helpers (the point is what the wire carries).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use proxy_core::body::{self, Body, BodyReadTimeout};
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
                Err(e) if e.is::<BodyReadTimeout>() => text(StatusCode::REQUEST_TIMEOUT, e.to_string()),
                Err(e) => text(StatusCode::BAD_REQUEST, e.to_string()),
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
/// closed first.
pub async fn read_response(tcp: &mut TcpStream) -> Option<Raw> {
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

/// Waits until the peer closes the connection; returns anything it sent.
pub async fn closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
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
