//! Outbound: the app's calls to other services.
//!
//! Explicit mode: the app sets `HTTP_PROXY=http://127.0.0.1:<outbound port>`
//! (requests then arrive in absolute form, `GET http://catalog/products`), or
//! calls the outbound port with `Host: catalog`; the destination is the service
//! of that name. Transparent mode hands the same handler the connection's
//! original destination: a configured service is recognised by its name in
//! `Host` or by the dialled address being one of its endpoints; anything else
//! is forwarded to the original destination unchanged (no retries, no breaker).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arc_swap::ArcSwap;
use http::{Method, Request, Response, Uri};
use proxy_core::body::{self, Body};
use proxy_core::forward::{ensure_request_id, strip_hop_by_hop};
use proxy_core::grpc::Protocol;
use proxy_core::server::{ConnInfo, Handler, RequestBody};
use proxy_core::telemetry::AccessLogFormat;
use proxy_core::telemetry::access_log::{Counted, PendingLine};
use tokio::time::Instant;

use crate::problems;
use crate::runtime::Runtime;

/// The outbound request handler; `original_dst` is set per connection in
/// transparent mode.
#[derive(Clone)]
pub(crate) struct Outbound {
    pub(crate) runtime: Arc<ArcSwap<Runtime>>,
    pub(crate) original_dst: Option<SocketAddr>,
}

impl Handler for Outbound {
    fn handle(
        self,
        req: Request<RequestBody>,
        conn: Arc<ConnInfo>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static {
        let rt = self.runtime.load_full();
        let original_dst = self.original_dst;
        async move { handle(rt, req, conn.remote, original_dst).await }
    }
}

/// The host a request names: the absolute-form URI's authority, else `Host`.
fn request_host(req: &Request<RequestBody>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
}

async fn handle(
    rt: Arc<Runtime>,
    req: Request<RequestBody>,
    client: SocketAddr,
    original_dst: Option<SocketAddr>,
) -> Response<Body> {
    if req.method() == Method::CONNECT {
        return problems::connect_unsupported(req.headers());
    }
    let host = request_host(&req);
    let dest = match (&host, original_dst) {
        (Some(h), _) if rt.destination_for_host(h).is_some() => rt.destination_for_host(h).cloned(),
        (_, Some(dst)) => rt.destination_for_addr(dst).cloned(),
        _ => None,
    };
    let grpc = Protocol::of(req.headers());
    let (mut parts, incoming) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    let request_id = ensure_request_id(&mut parts.headers);
    // Absolute-form (proxy) requests keep their authority as the Host.
    if let Some(authority) = parts.uri.authority().cloned() {
        if !parts.headers.contains_key(http::header::HOST)
            && let Ok(v) = http::HeaderValue::from_str(authority.as_str())
        {
            parts.headers.insert(http::header::HOST, v);
        }
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        if let Ok(uri) = pq.parse::<Uri>() {
            parts.uri = uri;
        }
    }
    let started = Instant::now();
    // The access log needs the head after the request is gone, and counts the
    // body; only when it is on.
    let log_head = (rt.telemetry.access_log() != AccessLogFormat::Off).then(|| {
        (
            parts.method.clone(),
            parts.uri.path().to_owned(),
            Arc::new(AtomicU64::new(0)),
        )
    });
    let body = match &log_head {
        Some((_, _, bytes_in)) => body::boxed(Counted::new(incoming, bytes_in.clone())),
        None => body::boxed(incoming),
    };
    let log = |resp: Response<Body>, upstream: Option<&Arc<str>>| {
        // The sidecar's own refusals, in gRPC terms for a gRPC client.
        let resp = match grpc {
            Some(protocol) => proxy_core::grpc::answer_as_grpc(resp, protocol),
            None => resp,
        };
        let Some((method, path, bytes_in)) = log_head else {
            return resp;
        };
        PendingLine {
            format: rt.telemetry.access_log(),
            started,
            request_id: request_id.clone(),
            trace_id: None,
            method,
            path,
            status: resp.status().as_u16(),
            client,
            route: None,
            upstream: upstream.cloned(),
            endpoint: None,
            consumer: None,
            peer: None,
            bytes_in: Some(bytes_in),
        }
        .attach(resp)
    };
    match (dest, original_dst) {
        (Some(dest), _) => {
            let _guard = dest.traffic.start();
            let req = Request::from_parts(parts, body);
            let result = dest.call(req).await;
            let resp = match result {
                Ok(resp) => {
                    let mut resp = resp.map(body::boxed);
                    strip_hop_by_hop(resp.headers_mut(), false);
                    resp
                }
                Err(e) => {
                    tracing::debug!(destination = %dest.settings.name, error = %proxy_core::problem::error_chain(&*e), "outbound call failed");
                    problems::outbound_error(
                        &dest.settings.name,
                        &*e,
                        &problems::id_headers(&request_id),
                    )
                }
            };
            let resp = match grpc {
                Some(protocol) => proxy_core::grpc::answer_as_grpc(resp, protocol),
                None => resp,
            };
            // What the caller sees: a gRPC refusal is a 200.
            dest.traffic
                .record(resp.status().as_u16(), started.elapsed());
            let resp = match grpc {
                Some(_) => {
                    let traffic = dest.traffic.clone();
                    proxy_core::grpc::observe(resp, move |outcome| {
                        traffic.record_grpc(outcome.code());
                    })
                }
                None => resp,
            };
            log(resp, Some(&dest.name))
        }
        (None, Some(dst)) => {
            let _guard = rt.passthrough_traffic.start();
            let req = Request::from_parts(parts, body);
            let resp = match rt.passthrough.send(req, dst).await {
                Ok(resp) => {
                    let mut resp = resp.map(body::boxed);
                    strip_hop_by_hop(resp.headers_mut(), false);
                    resp
                }
                Err(e) => problems::outbound_error(
                    &dst.to_string(),
                    &e,
                    &problems::id_headers(&request_id),
                ),
            };
            rt.passthrough_traffic
                .record(resp.status().as_u16(), started.elapsed());
            log(resp, Some(&rt.passthrough_label))
        }
        (None, None) => {
            let resp = match host {
                Some(h) => problems::unknown_destination(&h, &problems::id_headers(&request_id)),
                None => problems::missing_host(&problems::id_headers(&request_id)),
            };
            log(resp, None)
        }
    }
}
