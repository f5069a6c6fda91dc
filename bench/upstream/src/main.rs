//! The bench's upstream and its idle-connection holder, one small binary.
//!
//! `serve ADDR [BODY_BYTES]` answers every request with `200` and a fixed body
//! (1 KiB by default), on HTTP/1.1 keep-alive, on one current-thread runtime:
//! the upstream of `../shared/BENCH.md` ("a small hyper server answering `GET /`
//! with a fixed 1 KiB body"). The bench pins it to one core next to wrk.
//!
//! `POST /v1/traces` gets an empty `200 application/x-protobuf` instead: the
//! sidecar bench points its OTLP/HTTP exporter at a second instance, so
//! tracing really exports without a collector.
//!
//! `hold ADDR CONNS SECS [PATH [HOST [HEADER]]]` opens CONNS keep-alive connections to ADDR,
//! sends one `GET PATH` on each (so a proxy has really set up both sides and
//! its buffers), reads the whole response, then keeps every connection open
//! and silent for SECS seconds. It prints `holding N` once all are ready, which
//! is when the bench samples the proxy's resident memory.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

const USAGE: &str = "usage: weir-bench-upstream serve ADDR [BODY_BYTES]\n       weir-bench-upstream hold ADDR CONNS SECS [PATH [HOST [HEADER]]]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", addr, rest @ ..] => {
            let body_len = rest.first().map_or(Ok(1024), |s| {
                s.parse::<usize>().map_err(|e| format!("BODY_BYTES: {e}"))
            });
            match (addr.parse::<SocketAddr>(), body_len) {
                (Ok(addr), Ok(len)) => rt.block_on(serve(addr, len)),
                (Err(e), _) => Err(format!("ADDR: {e}")),
                (_, Err(e)) => Err(e),
            }
        }
        ["hold", addr, conns, secs, rest @ ..] => {
            let path = rest.first().copied().unwrap_or("/").to_owned();
            let host = rest
                .get(1)
                .map_or_else(|| addr.to_string(), |h| (*h).to_owned());
            // One extra `Name: value` request header (e.g. the bench's API key).
            let extra = rest.get(2).map_or_else(String::new, |h| format!("{h}\r\n"));
            match (
                addr.parse::<SocketAddr>(),
                conns.parse::<usize>(),
                secs.parse::<u64>(),
            ) {
                (Ok(addr), Ok(n), Ok(s)) => rt.block_on(hold(
                    addr,
                    n,
                    Duration::from_secs(s),
                    &path,
                    &format!("{host}\r\n{extra}"),
                )),
                _ => Err(format!("bad arguments\n{USAGE}")),
            }
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir-bench-upstream: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Accepts forever; each connection gets its own task on the one thread.
async fn serve(addr: SocketAddr, body_len: usize) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("bind {addr}: {e}"))?;
    let body = Bytes::from(vec![b'x'; body_len]);
    println!(
        "listening on {}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // EMFILE and friends: back off briefly instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                // OTLP/HTTP exports (the sidecar bench points its tracing here)
                // get the empty protobuf `ExportTraceServiceResponse`.
                let otlp = req.uri().path() == "/v1/traces";
                let body = if otlp { Bytes::new() } else { body.clone() };
                async move {
                    if otlp {
                        // Read the whole batch before answering.
                        let _ = req.into_body().collect().await;
                    }
                    let mut resp = Response::new(Full::new(body));
                    let ct = if otlp {
                        "application/x-protobuf"
                    } else {
                        "text/plain"
                    };
                    resp.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(ct),
                    );
                    Ok::<_, Infallible>(resp)
                }
            });
            // Errors here are clients going away mid-request: nothing to do.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Opens `n` connections (at most 64 handshakes at a time, so no listen
/// backlog overflows), one request each, then holds them all open.
async fn hold(
    addr: SocketAddr,
    n: usize,
    secs: Duration,
    path: &str,
    host_and_headers: &str,
) -> Result<(), String> {
    let gate = Arc::new(Semaphore::new(64));
    let request = Arc::new(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host_and_headers}User-Agent: weir-bench-hold\r\n\r\n"
        )
        .into_bytes(),
    );
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let gate = gate.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let mut stream = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            stream
                .write_all(&request)
                .await
                .map_err(|e| format!("write: {e}"))?;
            read_response(&mut stream).await?;
            Ok::<_, String>(stream)
        }));
    }
    let mut held = Vec::with_capacity(n);
    let mut failures = 0usize;
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(e)) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                failures += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    println!(
        "holding {} failed {}{}",
        held.len(),
        failures,
        first_error.map(|e| format!(" ({e})")).unwrap_or_default()
    );
    tokio::time::sleep(secs).await;
    drop(held);
    Ok(())
}

/// Reads one response: headers up to the blank line, then `Content-Length`
/// bytes of body (the upstream and every proxy in the bench send one).
async fn read_response(stream: &mut TcpStream) -> Result<(), String> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before the response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err(format!(
                    "unexpected status line: {}",
                    head.lines().next().unwrap_or("")
                ));
            }
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or("response without content-length")?;
            let mut have = buf.len() - (end + 4);
            while have < len {
                let n = stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("read body: {e}"))?;
                if n == 0 {
                    return Err("connection closed mid-body".into());
                }
                have += n;
            }
            return Ok(());
        }
        if buf.len() > 64 * 1024 {
            return Err("response head larger than 64 KiB".into());
        }
    }
}
