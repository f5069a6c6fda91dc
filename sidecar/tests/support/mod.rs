//! Test harness: in-process upstreams that fail in controlled ways, a sidecar
//! started on 127.0.0.1:0, and a plain HTTP client.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use proxy_core::shutdown::{self, ShutdownTrigger};
use sidecar::{Sidecar, SidecarConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type UpBody = BoxBody<Bytes, BoxError>;

/// What an upstream does with one request.
#[derive(Clone, Debug)]
pub enum Action {
    Status(u16),
    Delay(Duration, u16),
    Hang,
    /// Headers and a first chunk, then the connection is cut.
    ResetMidBody,
    /// A gRPC trailers-only response (`grpc-status` in the headers).
    GrpcStatus(u32),
    /// A gRPC response whose `grpc-status` comes in trailers after one message.
    GrpcTrailers(u32),
}

type Script = Arc<dyn Fn(u64, &http::request::Parts) -> Action + Send + Sync>;

/// An in-process HTTP/1+2 upstream on 127.0.0.1:0.
pub struct Upstream {
    pub addr: SocketAddr,
    hits: Arc<AtomicU64>,
    script: Arc<Mutex<Script>>,
    seen: Arc<Mutex<Vec<http::request::Parts>>>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(status: u16, text: String) -> Response<UpBody> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(text)).map_err(|n| match n {}).boxed())
        .unwrap()
}

impl Upstream {
    /// An upstream that answers 200 with its own address until told otherwise.
    pub async fn start() -> Upstream {
        Self::with(|_, _| Action::Status(200)).await
    }

    pub async fn with(
        f: impl Fn(u64, &http::request::Parts) -> Action + Send + Sync + 'static,
    ) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Arc::new(f)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (h, s, v) = (hits.clone(), script.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (h, s, v) = (h.clone(), s.clone(), v.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (h, s, v) = (h.clone(), s.clone(), v.clone());
                        async move {
                            let n = h.fetch_add(1, Ordering::SeqCst);
                            let (parts, body) = req.into_parts();
                            let _ = body.collect().await;
                            let script = s.lock().unwrap().clone();
                            let action = script(n, &parts);
                            v.lock().unwrap().push(parts);
                            let resp = match action {
                                Action::Status(code) => full(code, format!("{addr}")),
                                Action::Delay(d, code) => {
                                    tokio::time::sleep(d).await;
                                    full(code, format!("{addr}"))
                                }
                                Action::Hang => std::future::pending().await,
                                Action::GrpcStatus(code) => Response::builder()
                                    .header("content-type", "application/grpc")
                                    .header("grpc-status", code)
                                    .body(BodyExt::boxed(
                                        Full::new(Bytes::new()).map_err(|n| match n {}),
                                    ))
                                    .unwrap(),
                                Action::GrpcTrailers(code) => {
                                    let mut t = http::HeaderMap::new();
                                    t.insert("grpc-status", code.into());
                                    let frames: Vec<Result<Frame<Bytes>, BoxError>> = if code == 0 {
                                        vec![
                                            Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x02ok"))),
                                            Ok(Frame::trailers(t)),
                                        ]
                                    } else {
                                        vec![Ok(Frame::trailers(t))]
                                    };
                                    Response::builder()
                                        .header("content-type", "application/grpc")
                                        .body(BodyExt::boxed(StreamBody::new(
                                            futures_util::stream::iter(frames),
                                        )))
                                        .unwrap()
                                }
                                Action::ResetMidBody => {
                                    use futures_util::StreamExt;
                                    // The head and a first chunk go out; only
                                    // then is the body cut.
                                    let first = futures_util::stream::once(async {
                                        Ok::<_, BoxError>(Frame::data(Bytes::from_static(
                                            b"partial",
                                        )))
                                    });
                                    let cut = futures_util::stream::once(async {
                                        tokio::time::sleep(Duration::from_millis(50)).await;
                                        Err::<Frame<Bytes>, BoxError>("cut".into())
                                    });
                                    Response::builder()
                                        .header("content-length", "1000")
                                        .body(BodyExt::boxed(StreamBody::new(first.chain(cut))))
                                        .unwrap()
                                }
                            };
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            hits,
            script,
            seen,
            task,
        }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn set(&self, f: impl Fn(u64, &http::request::Parts) -> Action + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Arc::new(f);
    }

    pub fn seen_header(&self, i: usize, name: &str) -> Option<String> {
        self.seen
            .lock()
            .unwrap()
            .get(i)?
            .headers
            .get(name)?
            .to_str()
            .ok()
            .map(str::to_owned)
    }
}

/// An address nothing listens on (connection refused).
pub async fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

/// A running sidecar.
pub struct Running {
    pub inbound: SocketAddr,
    pub outbound: SocketAddr,
    pub admin: SocketAddr,
    trigger: Option<ShutdownTrigger>,
    task: Option<JoinHandle<Result<(), sidecar::SidecarError>>>,
}

impl Running {
    pub fn new(
        inbound: SocketAddr,
        outbound: SocketAddr,
        admin: SocketAddr,
        trigger: ShutdownTrigger,
        task: JoinHandle<Result<(), sidecar::SidecarError>>,
    ) -> Running {
        Running {
            inbound,
            outbound,
            admin,
            trigger: Some(trigger),
            task: Some(task),
        }
    }

    /// Triggers shutdown and waits for the sidecar to return.
    pub async fn stop(mut self) {
        if let Some(t) = self.trigger.take() {
            t.trigger();
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub fn trigger(&mut self) -> JoinHandle<Result<(), sidecar::SidecarError>> {
        if let Some(t) = self.trigger.take() {
            t.trigger();
        }
        self.task.take().unwrap()
    }
}

/// Starts a sidecar from YAML; `{app}` is replaced by `app`.
pub async fn start_sidecar(yaml: &str) -> Running {
    let cfg = SidecarConfig::from_yaml(yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let sc = Sidecar::bind(cfg).await.unwrap();
    let (inbound, outbound, admin) = (sc.inbound_addr(), sc.outbound_addr(), sc.admin_addr());
    let (trigger, signal) = shutdown::channel();
    let task = tokio::spawn(sc.serve(signal));
    Running {
        inbound,
        outbound,
        admin,
        trigger: Some(trigger),
        task: Some(task),
    }
}

/// A sidecar config with one outbound service `svc` over `endpoints` and the
/// given extra YAML for that service (indented under it).
pub fn config(app: SocketAddr, endpoints: &[SocketAddr], service_extra: &str) -> String {
    let eps: Vec<String> = endpoints.iter().map(|e| e.to_string()).collect();
    let mut extra = String::new();
    for line in service_extra.lines() {
        extra.push_str("    ");
        extra.push_str(line);
        extra.push('\n');
    }
    format!(
        "service: test\ninbound:\n  address: 127.0.0.1:0\n  app: {app}\noutbound:\n  address: 127.0.0.1:0\nservices:\n  svc:\n    endpoints: [{}]\n{extra}admin:\n  address: 127.0.0.1:0\nshutdown: {{ drain: 5s }}\n",
        eps.join(", ")
    )
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 prior-knowledge client (what gRPC uses).
pub fn h2_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A response with its body collected.
pub struct Got {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn attempts(&self) -> Option<u32> {
        self.headers
            .get("x-retry-attempts")?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }
}

/// Sends `method` to `to` with `Host: host`.
pub async fn send(
    c: &HttpClient,
    to: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    body: &str,
) -> Got {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{to}{path}"))
        .header("host", host)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_else(|e| format!("<body error: {e}>"));
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(c: &HttpClient, to: SocketAddr, host: &str) -> Got {
    send(c, to, "GET", host, "/", "").await
}

/// `GET` an admin path (naming the admin listener itself in `Host`, as the
/// admin listener requires).
pub async fn admin(c: &HttpClient, admin: SocketAddr, path: &str) -> Got {
    send(c, admin, "GET", &admin.to_string(), path, "").await
}

/// The value of a metric line starting with `prefix` in `/metrics`.
pub async fn metric(c: &HttpClient, admin_addr: SocketAddr, prefix: &str) -> Option<f64> {
    let text = admin(c, admin_addr, "/metrics").await.body;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
