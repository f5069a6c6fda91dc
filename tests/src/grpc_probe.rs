//! A real gRPC service for the proxies' gRPC tests, served by tonic, and a
//! tonic client for it, without code generation: the messages are prost
//! structs and the service routes its two methods to `tonic::server::Grpc`,
//! which is what generated code does.
//!
//! `weir.test.v1.Probe/Unary` answers one [`Reply`]; `…/Stream` answers
//! `count` replies. What a call does is in its [`Call`]: a delay, a final
//! `grpc-status`. A server-wide plan of codes makes the next calls fail
//! whatever they ask (`UNAVAILABLE` then `OK` for a retry test). The server
//! records every call's `grpc-timeout`, counts calls, and says when a stream
//! was dropped before it ended (a cancelled call reaching the server).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use http::uri::PathAndQuery;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Code, Request, Response, Status};

/// The service name.
pub const SERVICE: &str = "weir.test.v1.Probe";
pub const UNARY: &str = "/weir.test.v1.Probe/Unary";
pub const STREAM: &str = "/weir.test.v1.Probe/Stream";

/// What a call asks of the server.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Call {
    #[prost(string, tag = "1")]
    pub text: String,
    /// The `grpc-status` to end with (0: OK).
    #[prost(uint32, tag = "2")]
    pub code: u32,
    /// Wait before the (first) reply, and between stream replies.
    #[prost(uint32, tag = "3")]
    pub delay_ms: u32,
    /// Stream replies before the status.
    #[prost(uint32, tag = "4")]
    pub count: u32,
}

/// One reply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reply {
    #[prost(string, tag = "1")]
    pub text: String,
    #[prost(uint32, tag = "2")]
    pub seq: u32,
    /// The `grpc-timeout` the server received, if any.
    #[prost(string, tag = "3")]
    pub grpc_timeout: String,
}

/// The state a test inspects.
#[derive(Default, Debug)]
pub struct ProbeState {
    calls: AtomicU32,
    plan: Mutex<VecDeque<Code>>,
    always: Mutex<Option<Code>>,
    timeouts: Mutex<Vec<Option<String>>>,
    streams_dropped: AtomicU32,
    dropped: Notify,
}

impl ProbeState {
    /// Calls received.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The next calls fail with these codes, one each, whatever they ask.
    pub fn plan(&self, codes: &[Code]) {
        self.plan.lock().unwrap().extend(codes.iter().copied());
    }

    /// Every call fails with `code` until told otherwise (`None`).
    pub fn always(&self, code: Option<Code>) {
        *self.always.lock().unwrap() = code;
    }

    /// The `grpc-timeout` of every call received, in order.
    pub fn timeouts(&self) -> Vec<Option<String>> {
        self.timeouts.lock().unwrap().clone()
    }

    /// Resolves once `n` streams have been dropped before their end.
    pub async fn streams_dropped(&self, n: u32) {
        loop {
            let notified = self.dropped.notified();
            if self.streams_dropped.load(Ordering::SeqCst) >= n {
                return;
            }
            notified.await;
        }
    }

    fn begin(&self, headers: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let t = headers
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.timeouts.lock().unwrap().push(t);
        let planned = self.plan.lock().unwrap().pop_front();
        match planned.or(*self.always.lock().unwrap()) {
            Some(code) => Err(Status::new(code, format!("planned {code:?}"))),
            None => Ok(()),
        }
    }
}

fn status_of(code: u32, what: &str) -> Result<(), Status> {
    match Code::from_i32(code as i32) {
        Code::Ok => Ok(()),
        c => Err(Status::new(c, format!("{what} asked for {c:?}"))),
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<Reply, Status>> + Send>>;

/// The tower service tonic serves.
#[derive(Clone, Debug)]
pub struct ProbeService(pub Arc<ProbeState>);

impl NamedService for ProbeService {
    const NAME: &'static str = SERVICE;
}

impl tower::Service<http::Request<Body>> for ProbeService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let state = self.0.clone();
        match req.uri().path() {
            UNARY => Box::pin(async move {
                let svc = tower::service_fn(move |r: Request<Call>| {
                    let state = state.clone();
                    async move {
                        state.begin(r.metadata())?;
                        let timeout = r
                            .metadata()
                            .get("grpc-timeout")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let call = r.into_inner();
                        if call.delay_ms > 0 {
                            tokio::time::sleep(Duration::from_millis(call.delay_ms.into())).await;
                        }
                        status_of(call.code, "unary")?;
                        Ok::<_, Status>(Response::new(Reply {
                            text: call.text,
                            seq: 0,
                            grpc_timeout: timeout,
                        }))
                    }
                });
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(svc, req).await)
            }),
            STREAM => Box::pin(async move {
                let svc = tower::service_fn(move |r: Request<Call>| {
                    let state = state.clone();
                    async move {
                        state.begin(r.metadata())?;
                        let call = r.into_inner();
                        let stream: ReplyStream = Box::pin(replies(call, state));
                        Ok::<_, Status>(Response::new(stream))
                    }
                });
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.server_streaming(svc, req).await)
            }),
            _ => Box::pin(async move { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

/// Counts a stream dropped before it ended.
struct DropWatch {
    state: Arc<ProbeState>,
    finished: bool,
}

impl Drop for DropWatch {
    fn drop(&mut self) {
        if !self.finished {
            self.state.streams_dropped.fetch_add(1, Ordering::SeqCst);
            self.state.dropped.notify_waiters();
        }
    }
}

fn replies(call: Call, state: Arc<ProbeState>) -> impl Stream<Item = Result<Reply, Status>> {
    let watch = DropWatch {
        state,
        finished: false,
    };
    futures_util::stream::unfold((call, 0u32, watch), |(call, seq, mut watch)| async move {
        if seq > call.count || watch.finished {
            return None;
        }
        if seq == call.count {
            watch.finished = true;
            return status_of(call.code, "stream")
                .err()
                .map(|s| (Err(s), (call, seq + 1, watch)));
        }
        if call.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(call.delay_ms.into())).await;
        }
        let reply = Reply {
            text: call.text.clone(),
            seq,
            grpc_timeout: String::new(),
        };
        Some((Ok(reply), (call, seq + 1, watch)))
    })
}

/// A probe served by tonic's server on `127.0.0.1:0`; stopped on drop.
#[derive(Debug)]
pub struct ProbeServer {
    pub addr: SocketAddr,
    pub state: Arc<ProbeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ProbeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProbeServer {
    /// Served by `tonic::transport::Server` (which also enforces the
    /// `grpc-timeout` it receives), beside `grpc.health.v1` reporting the
    /// probe service as serving.
    pub async fn start() -> ProbeServer {
        Self::start_reporting(true).await
    }

    /// Like [`ProbeServer::start`], with `grpc.health.v1` saying the probe
    /// service is `SERVING` or `NOT_SERVING`.
    pub async fn start_reporting(serving: bool) -> ProbeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProbeState::default());
        let svc = ProbeService(state.clone());
        let (reporter, health) = tonic_health::server::health_reporter();
        if serving {
            reporter.set_serving::<ProbeService>().await;
        } else {
            reporter.set_not_serving::<ProbeService>().await;
        }
        let router = tonic::transport::Server::builder()
            .add_service(health)
            .add_service(svc);
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let task = tokio::spawn(async move {
            let _reporter = reporter;
            let _ = router.serve_with_incoming(incoming).await;
        });
        ProbeServer { addr, state, task }
    }

    /// Served by hyper's HTTP/2 server directly, with tonic's codec but
    /// without tonic's server deadline: the proxies' own deadlines are then
    /// the only ones that fire.
    pub async fn start_without_deadlines() -> ProbeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProbeState::default());
        let svc = ProbeService(state.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let svc = svc.clone();
                tokio::spawn(async move {
                    let hyper_svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let mut svc = svc.clone();
                            tower::Service::call(&mut svc, req.map(Body::new))
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), hyper_svc)
                    .await;
                });
            }
        });
        ProbeServer { addr, state, task }
    }
}

/// A tonic client of the probe through `uri` (a proxy, or the server).
#[derive(Clone, Debug)]
pub struct ProbeClient {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
}

impl ProbeClient {
    pub async fn connect(uri: String) -> ProbeClient {
        Self::connect_as(uri, None).await
    }

    /// Connects to `uri` naming `origin` as the `:authority` (a sidecar's
    /// outbound picks the destination by it).
    pub async fn connect_as(uri: String, origin: Option<&str>) -> ProbeClient {
        let mut endpoint = tonic::transport::Endpoint::from_shared(uri).unwrap();
        if let Some(origin) = origin {
            endpoint = endpoint.origin(origin.parse().unwrap());
        }
        let channel = endpoint
            .connect()
            .await
            .expect("the proxy accepts the connection");
        ProbeClient {
            grpc: tonic::client::Grpc::new(channel),
        }
    }

    pub async fn unary(&mut self, req: Request<Call>) -> Result<Response<Reply>, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        self.grpc
            .unary(
                req,
                PathAndQuery::from_static(UNARY),
                tonic_prost::ProstCodec::default(),
            )
            .await
    }

    pub async fn stream(
        &mut self,
        req: Request<Call>,
    ) -> Result<Response<tonic::codec::Streaming<Reply>>, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        self.grpc
            .server_streaming(
                req,
                PathAndQuery::from_static(STREAM),
                tonic_prost::ProstCodec::default(),
            )
            .await
    }
}

/// A call asking for `text` back.
pub fn call(text: &str) -> Call {
    Call {
        text: text.to_owned(),
        ..Call::default()
    }
}
