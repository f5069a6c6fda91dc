//! An in-process OTLP trace receiver: what a collector would see, for tests.
//!
//! Two transports, one store: gRPC (`TraceService/Export`, what exporters use
//! by default, port 4317 in real life) and HTTP/protobuf (`POST /v1/traces`,
//! 4318). Both bind `127.0.0.1:0`. Tests await conditions on the store (a span
//! count, a trace's spans) instead of sleeping: every export wakes waiters.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{span, status};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// An attribute value as received.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
    Double(f64),
    /// Arrays, maps and bytes: not used by Weir; kept visible for messages.
    Other(String),
}

impl AttrValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            AttrValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// Span kind as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

/// Span status code as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

/// One received span, flattened with its resource's `service.name`.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub service: String,
    pub resource: BTreeMap<String, AttrValue>,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// `None` for a root span.
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: Kind,
    pub attributes: BTreeMap<String, AttrValue>,
    pub status: StatusCode,
    pub status_message: String,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }

    pub fn attr_int(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(AttrValue::as_int)
    }
}

/// Everything received so far; clone freely.
#[derive(Clone, Debug)]
pub struct SpanStore {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    /// Bumped on every export request; waiters re-check their condition.
    version: Arc<watch::Sender<u64>>,
}

impl Default for SpanStore {
    fn default() -> Self {
        Self {
            spans: Arc::default(),
            version: Arc::new(watch::channel(0).0),
        }
    }
}

impl SpanStore {
    /// A snapshot of every span received.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().clone()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spans of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.lock()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Waits until `cond` holds for the received spans, then returns them.
    /// Wrap in `tokio::time::timeout` to bound a test that would otherwise hang.
    pub async fn wait_until(&self, cond: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        let mut rx = self.version.subscribe();
        loop {
            {
                let spans = self.lock();
                if cond(&spans) {
                    return spans.clone();
                }
            }
            // The sender lives in `self`, so this only fails if it is dropped: never.
            if rx.changed().await.is_err() {
                return self.spans();
            }
        }
    }

    /// Waits for at least `n` spans in total.
    pub async fn wait_for_count(&self, n: usize) -> Vec<ReceivedSpan> {
        self.wait_until(|s| s.len() >= n).await
    }

    /// Waits for at least `n` spans of `trace_id`, and returns that trace's spans.
    pub async fn wait_for_trace(&self, trace_id: &str, n: usize) -> Vec<ReceivedSpan> {
        self.wait_until(|s| s.iter().filter(|x| x.trace_id == trace_id).count() >= n)
            .await;
        self.trace(trace_id)
    }

    /// Adds the spans of one export request and wakes waiters.
    pub fn ingest(&self, req: ExportTraceServiceRequest) {
        let mut new = Vec::new();
        for rs in req.resource_spans {
            let resource = rs.resource.map(|r| attrs(r.attributes)).unwrap_or_default();
            let service = resource
                .get("service.name")
                .and_then(AttrValue::as_str)
                .unwrap_or("")
                .to_owned();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    let (status, status_message) = match s.status {
                        Some(st) => (
                            match status::StatusCode::try_from(st.code) {
                                Ok(status::StatusCode::Ok) => StatusCode::Ok,
                                Ok(status::StatusCode::Error) => StatusCode::Error,
                                _ => StatusCode::Unset,
                            },
                            st.message,
                        ),
                        None => (StatusCode::Unset, String::new()),
                    };
                    new.push(ReceivedSpan {
                        service: service.clone(),
                        resource: resource.clone(),
                        trace_id: hex::encode(&s.trace_id),
                        span_id: hex::encode(&s.span_id),
                        parent_span_id: (!s.parent_span_id.is_empty()
                            && s.parent_span_id.iter().any(|b| *b != 0))
                        .then(|| hex::encode(&s.parent_span_id)),
                        name: s.name,
                        kind: kind(s.kind),
                        attributes: attrs(s.attributes),
                        status,
                        status_message,
                    });
                }
            }
        }
        self.lock().extend(new);
        self.version.send_modify(|v| *v += 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ReceivedSpan>> {
        // A panicking test thread poisons nothing we rely on: the Vec stays valid.
        self.spans.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn kind(k: i32) -> Kind {
    match span::SpanKind::try_from(k) {
        Ok(span::SpanKind::Internal) => Kind::Internal,
        Ok(span::SpanKind::Server) => Kind::Server,
        Ok(span::SpanKind::Client) => Kind::Client,
        Ok(span::SpanKind::Producer) => Kind::Producer,
        Ok(span::SpanKind::Consumer) => Kind::Consumer,
        _ => Kind::Unspecified,
    }
}

fn attrs(kvs: Vec<KeyValue>) -> BTreeMap<String, AttrValue> {
    kvs.into_iter()
        .map(|kv| (kv.key, value(kv.value)))
        .collect()
}

fn value(v: Option<AnyValue>) -> AttrValue {
    match v.and_then(|v| v.value) {
        Some(any_value::Value::StringValue(s)) => AttrValue::Str(s),
        Some(any_value::Value::IntValue(i)) => AttrValue::Int(i),
        Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(b),
        Some(any_value::Value::DoubleValue(d)) => AttrValue::Double(d),
        other => AttrValue::Other(format!("{other:?}")),
    }
}

/// Which wire protocol a receiver speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    HttpProtobuf,
}

/// A running receiver. Stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    transport: Transport,
    store: SpanStore,
    stop: Option<oneshot::Sender<()>>,
}

impl OtlpReceiver {
    /// OTLP/gRPC on `127.0.0.1:0`.
    pub async fn grpc() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let store = SpanStore::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let svc = TraceServiceServer::new(GrpcSink {
            store: store.clone(),
        });
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            transport: Transport::Grpc,
            store,
            stop: Some(stop),
        })
    }

    /// OTLP/HTTP with protobuf bodies (`POST /v1/traces`) on `127.0.0.1:0`.
    pub async fn http() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let store = SpanStore::default();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task_store = store.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    _ = &mut stopped => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                };
                let store = task_store.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle_http(store.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            transport: Transport::HttpProtobuf,
            store,
            stop: Some(stop),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// `http://127.0.0.1:PORT`: what goes into `telemetry.otlp.endpoint` /
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (exporters append `/v1/traces` for HTTP).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn store(&self) -> &SpanStore {
        &self.store
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct GrpcSink {
    store: SpanStore,
}

#[tonic::async_trait]
impl TraceService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.store.ingest(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn handle_http(
    store: SpanStore,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let respond = |status: u16, body: Bytes| {
        let mut resp = http::Response::new(Full::new(body));
        *resp.status_mut() =
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        resp
    };
    if req.method() != http::Method::POST || req.uri().path() != "/v1/traces" {
        return Ok(respond(404, Bytes::new()));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(respond(400, Bytes::new())),
    };
    match ExportTraceServiceRequest::decode(body) {
        Ok(export) => {
            store.ingest(export);
            Ok(respond(
                200,
                ExportTraceServiceResponse {
                    partial_success: None,
                }
                .encode_to_vec()
                .into(),
            ))
        }
        Err(_) => Ok(respond(400, Bytes::new())),
    }
}
