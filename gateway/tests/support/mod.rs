//! Shared harness for the gateway integration tests: a gateway started
//! in-process on `127.0.0.1:0` from a YAML file in a private temp dir,
//! in-process hyper upstreams, a real HTTP client, and small helpers for
//! problem documents, metrics and bounded polling.
//!
//! Every test binary uses a subset of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gateway::Gateway;
use gateway::snapshot::Snapshot;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use proxy_core::config::ConfigErrors;
use proxy_core::reload::Reloader;
use proxy_core::shutdown::{ShutdownTrigger, channel};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub(crate) mod mesh;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Body type of test requests and upstream responses.
pub(crate) type TestBody = UnsyncBoxBody<Bytes, BoxError>;

/// Upper bound for background state changes awaited by polling. Generous on
/// purpose: it only matters when something is broken.
pub(crate) const POLL_CAP: Duration = Duration::from_secs(20);

/// The listener/admin preamble every test config starts with.
pub(crate) const PREAMBLE: &str =
    "listeners:\n  - name: public\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n";

/// A full config: the standard listener and admin on port 0, then `rest`.
pub(crate) fn config(rest: &str) -> String {
    format!("{PREAMBLE}{rest}")
}

// ---------------------------------------------------------------- temp dirs

/// A private directory removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "weir-gw-test-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` atomically (temp file + rename), so a file watcher
    /// never reads a half-written file.
    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.{}", fastrand::u64(..)));
        std::fs::write(&tmp, contents).expect("write temp file");
        std::fs::rename(&tmp, &path).expect("rename temp file");
        path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------- gateway

/// A gateway serving in-process.
pub(crate) struct TestGateway {
    pub(crate) dir: TempDir,
    pub(crate) config_path: PathBuf,
    pub(crate) addrs: HashMap<String, SocketAddr>,
    pub(crate) reloader: Arc<Reloader<Snapshot>>,
    trigger: Option<ShutdownTrigger>,
    task: Option<JoinHandle<()>>,
}

impl TestGateway {
    /// Writes `yaml` to `gateway.yaml` in a fresh temp dir and starts the gateway.
    pub(crate) async fn start(yaml: &str) -> Self {
        Self::start_in(TempDir::new(), yaml).await
    }

    /// Like [`TestGateway::start`] in a prepared dir (certificates…).
    pub(crate) async fn start_in(dir: TempDir, yaml: &str) -> Self {
        Self::start_with_credentials(dir, yaml, None).await
    }

    /// Like [`TestGateway::start_in`], with a workload identity.
    pub(crate) async fn start_with_credentials(
        dir: TempDir,
        yaml: &str,
        credentials: Option<proxy_core::identity::CredentialsWatch>,
    ) -> Self {
        let config_path = dir.write("gateway.yaml", yaml);
        let gw = match Gateway::bind_with_credentials(&config_path, |_| None, credentials).await {
            Ok(gw) => gw,
            Err(e) => panic!("gateway did not start: {e}"),
        };
        let addrs = gw.local_addrs();
        let reloader = gw.reloader();
        let (trigger, signal) = channel();
        let task = tokio::spawn(gw.serve(signal));
        Self {
            dir,
            config_path,
            addrs,
            reloader,
            trigger: Some(trigger),
            task: Some(task),
        }
    }

    /// The `public` listener.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addrs["public"]
    }

    pub(crate) fn admin(&self) -> SocketAddr {
        self.addrs["admin"]
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// Replaces the config file (atomically) without reloading.
    pub(crate) fn write_config(&self, yaml: &str) {
        self.dir.write("gateway.yaml", yaml);
    }

    /// Reloads from the file, off the async workers (a build is CPU work).
    pub(crate) async fn reload(&self) -> Result<(), ConfigErrors> {
        let r = self.reloader.clone();
        tokio::task::spawn_blocking(move || r.reload())
            .await
            .expect("reload task")
    }

    /// Writes `yaml` and reloads it.
    pub(crate) async fn replace_config(&self, yaml: &str) -> Result<(), ConfigErrors> {
        self.write_config(yaml);
        self.reload().await
    }

    /// Fires the shutdown signal without waiting.
    pub(crate) fn trigger_shutdown(&mut self) {
        if let Some(t) = &self.trigger {
            t.trigger();
        }
    }

    /// Waits (bounded) for `serve` to return.
    pub(crate) async fn join(&mut self) {
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("serve did not return after shutdown")
                .expect("serve panicked");
        }
    }

    pub(crate) async fn shutdown(mut self) {
        self.trigger_shutdown();
        self.join().await;
    }

    /// The Prometheus text of `/metrics`.
    pub(crate) async fn metrics(&self) -> String {
        let r = get(&format!("http://{}/metrics", self.admin())).await;
        assert_eq!(r.status, 200);
        r.text()
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(t) = &self.trigger {
            t.trigger();
        }
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

// ---------------------------------------------------------------- upstreams

type DynHandler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<TestBody>> + Send>>
        + Send
        + Sync,
>;

/// An in-process upstream server (HTTP/1.1 and h2c, upgrades enabled).
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    /// Connections accepted.
    pub(crate) connections: Arc<AtomicUsize>,
    /// Requests received.
    pub(crate) requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Starts an upstream answering with `handler`.
pub(crate) async fn start_upstream<F, Fut>(handler: F) -> Upstream
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    let handler: DynHandler = Arc::new(move |req| Box::pin(handler(req)));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (conns, reqs) = (connections.clone(), requests.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            conns.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            let reqs = reqs.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    reqs.fetch_add(1, Ordering::SeqCst);
                    let fut = handler(req);
                    async move { Ok::<_, std::convert::Infallible>(fut.await) }
                });
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http1().timer(TokioTimer::new());
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        connections,
        requests,
        task,
    }
}

/// An upstream that describes each request as JSON (see [`echo_response`]).
pub(crate) async fn echo_upstream(name: &'static str) -> Upstream {
    start_upstream(move |req| echo_response(name, req)).await
}

/// `{upstream, method, uri, version, headers: {name: [values]}, body_len}`;
/// the body is counted frame by frame, never held whole. The response also
/// carries `x-upstream: <name>`.
pub(crate) async fn echo_response(
    name: &'static str,
    req: Request<Incoming>,
) -> Response<TestBody> {
    let (parts, mut body) = req.into_parts();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    len += d.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        headers.insert(name.as_str().to_owned(), Value::Array(values));
    }
    let doc = serde_json::json!({
        "upstream": name,
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": len,
    });
    Response::builder()
        .header("content-type", "application/json")
        .header("x-upstream", name)
        .body(full(serde_json::to_vec(&doc).unwrap_or_default()))
        .expect("echo response")
}

/// A plain response with `body`.
pub(crate) fn text_response(status: u16, body: &'static str) -> Response<TestBody> {
    Response::builder()
        .status(status)
        .body(full(body))
        .expect("response")
}

/// An address nothing listens on (bound, then released), so connecting to
/// it is refused.
pub(crate) fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

// ---------------------------------------------------------------- bodies

pub(crate) fn full(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn empty() -> TestBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

// ---------------------------------------------------------------- client

/// A fresh HTTP/1.1 client (keep-alive pool of its own).
pub(crate) fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build_http()
}

/// A client speaking HTTP/2 with prior knowledge (h2c).
pub(crate) fn h2c_client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .timer(TokioTimer::new())
        .build_http()
}

/// A response read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) version: http::Version,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) trailers: Option<HeaderMap>,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// For echo replies: the values the upstream saw for `name`.
    pub(crate) fn seen(&self, name: &str) -> Vec<String> {
        self.json()["headers"][name]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// For echo replies: the first value the upstream saw for `name`.
    pub(crate) fn seen1(&self, name: &str) -> Option<String> {
        self.seen(name).into_iter().next()
    }
}

/// Sends `req` with `client` and reads the whole reply.
pub(crate) async fn send_with(
    client: &Client<HttpConnector, TestBody>,
    req: Request<TestBody>,
) -> Reply {
    let resp = client
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("request failed: {e:?}"));
    read_reply(resp).await
}

pub(crate) async fn read_reply(resp: Response<Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let collected = body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("reading the body failed: {e:?}"));
    let trailers = collected.trailers().cloned();
    Reply {
        version: parts.version,
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}

/// Sends `req` on a fresh client.
pub(crate) async fn send(req: Request<TestBody>) -> Reply {
    send_with(&client(), req).await
}

pub(crate) async fn get(url: &str) -> Reply {
    send(Request::get(url).body(empty()).expect("request")).await
}

/// GET with extra headers.
pub(crate) async fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(empty()).expect("request")).await
}

/// Checks an RFC 9457 problem document generated by the gateway and returns it.
pub(crate) fn assert_problem(reply: &Reply, status: u16, slug: &str) -> Value {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{reply:?}"
    );
    let doc = reply.json();
    assert_eq!(
        doc["type"],
        format!("https://weir.dev/problems/{slug}"),
        "{doc}"
    );
    assert_eq!(doc["status"], status, "{doc}");
    let id = doc["request_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no request_id in {doc}"));
    assert!(!id.is_empty());
    assert_eq!(
        reply.header("x-request-id"),
        Some(id),
        "the echoed id matches the document"
    );
    doc
}

// ---------------------------------------------------------------- metrics

/// The value of the sample whose line starts with `series` (name and labels
/// exactly as exposed, e.g. `weir_requests_total{route="a",status_class="2xx"}`).
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        let rest = rest.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

// ---------------------------------------------------------------- waiting

/// Polls `cond` every 20ms until it holds, panicking with `what` after
/// [`POLL_CAP`]. For background state changes only; never a time assertion.
pub(crate) async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + POLL_CAP;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bounds an awaited event so a broken gateway fails the test instead of hanging it.
pub(crate) async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(POLL_CAP, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
}

// ---------------------------------------------------------------- memory

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
pub(crate) fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .strip_prefix(':')?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

// ---------------------------------------------------------------- raw HTTP/1.1

/// A response read off a raw socket.
#[derive(Debug)]
pub(crate) struct RawReply {
    pub(crate) status: u16,
    /// The head as sent, lowercased (status line and header lines).
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

impl RawReply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\n{}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The problem `type` slug of a problem+json reply.
    pub(crate) fn problem_slug(&self) -> String {
        assert!(
            self.head.contains("content-type: application/problem+json"),
            "{}",
            self.head
        );
        self.json()["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("https://weir.dev/problems/"))
            .unwrap_or_default()
            .to_owned()
    }

    /// For echo replies: the values the upstream saw for `name`.
    pub(crate) fn seen(&self, name: &str) -> Vec<String> {
        self.json()["headers"][name]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Writes `request` as is on a new connection and reads one response until
/// the gateway closes the connection (send `Connection: close`, or a request
/// the gateway refuses). Bounded by [`POLL_CAP`].
pub(crate) async fn raw_request(addr: SocketAddr, request: &[u8]) -> RawReply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request).await.expect("write request");
    let mut got = Vec::new();
    within("the raw response", async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&got)));
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    let mut body = got[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    RawReply { status, head, body }
}

/// The data of a chunked body (trailers ignored).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_owned();
        let Ok(size) = usize::from_str_radix(&size_text, 16) else {
            break;
        };
        if size == 0 || raw.len() < line_end + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw = &raw[(line_end + 4 + size).min(raw.len())..];
    }
    out
}
