//! Inbound: traffic for the local app.
//!
//! Every request takes a slot of the concurrency limit without waiting: when
//! none is free the caller gets `503` (problem+json, `Retry-After: 1`) at once
//! rather than joining an unbounded queue. The slot is held until the response
//! body ends, so a slow download counts as in flight. The request timeout covers
//! the app's time to the response head.
//!
//! Identity: `x-weir-peer-identity` is removed from every request, then the
//! authorization policy decides from the caller's verified identity (a
//! refusal is `403`, naming neither the rule nor the identity), and an
//! allowed request carries the verified identity to the app in that header.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};
use http_body_util::BodyExt;
use proxy_core::body::{self, Body};
use proxy_core::forward::{
    ForwardedInfo, ensure_request_id, is_upgrade_request, prepare_request_headers,
    strip_hop_by_hop, tunnel_upgrade,
};
use proxy_core::grpc::Protocol;
use proxy_core::mtls::PEER_IDENTITY_HEADER;
use proxy_core::resilience::{TimeoutError, TimeoutKind};
use proxy_core::server::{ConnInfo, Handler, RequestBody};
use proxy_core::shutdown::Shutdown;
use proxy_core::telemetry::access_log::{Counted, PendingLine};
use proxy_core::telemetry::{AccessLogFormat, ActiveSpan, ServerSpanInfo, Telemetry};
use tokio::time::Instant;

use crate::authz::Caller;
use crate::problems;
use crate::runtime::Runtime;

/// The inbound request handler.
#[derive(Clone)]
pub(crate) struct Inbound {
    pub(crate) runtime: Arc<ArcSwap<Runtime>>,
    pub(crate) telemetry: Telemetry,
}

impl Handler for Inbound {
    fn handle(
        self,
        req: Request<RequestBody>,
        conn: Arc<ConnInfo>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static {
        let rt = self.runtime.load_full();
        async move { handle(rt, self.telemetry, req, conn).await }
    }
}

async fn handle(
    rt: Arc<Runtime>,
    telemetry: Telemetry,
    req: Request<RequestBody>,
    conn: Arc<ConnInfo>,
) -> Response<Body> {
    let started = Instant::now();
    let limit = rt.config.inbound.max_concurrent_requests;
    let grpc = Protocol::of(req.headers());
    let Ok(permit) = rt.inbound_slots.clone().try_acquire_owned() else {
        rt.metrics.inbound_rejected();
        let resp = problems::overloaded(limit, req.headers());
        rt.inbound_traffic
            .record(resp.status().as_u16(), started.elapsed());
        return resp;
    };
    let _in_flight = rt.inbound_traffic.start();
    let mut req = req;
    // Only a verified certificate may say who called: never the request.
    req.headers_mut().remove(PEER_IDENTITY_HEADER);
    let caller = Caller::of(&conn);
    let allowed = rt.authorizer.allows(req.method(), req.uri().path(), caller);
    rt.metrics.mesh.inbound_request(caller.label(), allowed);
    let mut span = telemetry.server_span(&req, ServerSpanInfo::default());
    if span.is_recording() {
        span.set_peer_identity(caller.label());
    }
    if grpc.is_some()
        && let Some((service, method)) = proxy_core::grpc::service_method(req.uri().path())
    {
        span.set_rpc(service, method);
    }
    // The access log needs the head after the request is gone, and counts the
    // body; only when it is on.
    let log_head = (telemetry.access_log() != AccessLogFormat::Off).then(|| {
        (
            req.method().clone(),
            req.uri().path().to_owned(),
            Arc::new(AtomicU64::new(0)),
        )
    });
    if !allowed {
        let request_id = ensure_request_id(req.headers_mut());
        let resp = problems::forbidden(&problems::id_headers(&request_id));
        return finish(
            &rt, &telemetry, span, started, log_head, request_id, caller, &conn, grpc, resp,
        );
    }
    if let Some(id) = caller.id()
        && let Ok(v) = http::HeaderValue::from_str(id.as_str())
    {
        req.headers_mut().insert(PEER_IDENTITY_HEADER, v);
    }
    // WebSocket and other upgrades: the tunnel opens once the app agrees (101).
    let client_upgrade = is_upgrade_request(req.headers()).then(|| hyper::upgrade::on(&mut req));
    let (mut parts, incoming) = req.into_parts();
    let host = parts.headers.get(http::header::HOST).cloned();
    prepare_request_headers(
        &mut parts.headers,
        ForwardedInfo {
            client_ip: conn.remote.ip(),
            proto: conn.scheme(),
            host: host.as_ref(),
            client_ip_header: Some(conn.remote_ip_header()),
        },
    );
    let request_id = ensure_request_id(&mut parts.headers);
    if telemetry.is_enabled() {
        telemetry
            .propagation()
            .inject(span.context(), &mut parts.headers);
    }
    let body = match &log_head {
        Some((_, _, bytes_in)) => body::boxed(Counted::new(incoming, bytes_in.clone())),
        None => body::boxed(incoming),
    };
    // A gRPC call's own deadline is honoured, capped by the inbound timeout
    // (which the app is then told through `grpc-timeout`).
    let timeout = match grpc {
        Some(_) => {
            proxy_core::grpc::timeout::cap(&mut parts.headers, Some(rt.config.inbound.timeout))
                .unwrap_or(rt.config.inbound.timeout)
        }
        None => rt.config.inbound.timeout,
    };
    let req = Request::from_parts(parts, body);
    let result = tokio::time::timeout(
        timeout,
        rt.app_client.send_to(req, rt.app_authority.clone()),
    )
    .await;
    let resp = match result {
        Ok(Ok(mut resp)) => {
            let switching = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
            if let (true, Some(client)) = (switching, client_upgrade) {
                tunnel_upgrade(client, hyper::upgrade::on(&mut resp));
            }
            // The slot is released when the body has been sent (or dropped).
            let mut resp = resp.map(move |b| {
                body::boxed(b.map_frame(move |f| {
                    let _held = &permit;
                    f
                }))
            });
            strip_hop_by_hop(resp.headers_mut(), switching);
            resp
        }
        Ok(Err(e)) => problems::inbound_error(&e, &problems::id_headers(&request_id)),
        Err(_) => problems::inbound_error(
            &TimeoutError::new(TimeoutKind::Request, timeout),
            &problems::id_headers(&request_id),
        ),
    };
    finish(
        &rt, &telemetry, span, started, log_head, request_id, caller, &conn, grpc, resp,
    )
}

/// Answers a gRPC caller in gRPC terms, records the outcome (span, metrics)
/// and attaches the access line.
#[allow(clippy::too_many_arguments)]
fn finish(
    rt: &Runtime,
    telemetry: &Telemetry,
    mut span: ActiveSpan,
    started: Instant,
    log_head: Option<(http::Method, String, Arc<AtomicU64>)>,
    request_id: http::HeaderValue,
    caller: Caller<'_>,
    conn: &ConnInfo,
    grpc: Option<Protocol>,
    resp: Response<Body>,
) -> Response<Body> {
    let mut resp = match grpc {
        Some(protocol) => proxy_core::grpc::answer_as_grpc(resp, protocol),
        None => resp,
    };
    span.record_response(resp.status());
    let elapsed = started.elapsed();
    rt.inbound_traffic.record(resp.status().as_u16(), elapsed);
    let trace_id = span.trace_id();
    if grpc.is_some() {
        // The outcome is in the trailers: the span and the counters wait for it.
        let traffic = rt.inbound_traffic.clone();
        resp = proxy_core::grpc::observe(resp, move |outcome| {
            span.record_grpc_status(outcome.code(), true);
            traffic.record_grpc(outcome.code());
        });
    } else {
        drop(span);
    }
    let Some((method, path, bytes_in)) = log_head else {
        return resp;
    };
    PendingLine {
        format: telemetry.access_log(),
        started,
        request_id,
        trace_id,
        method,
        path,
        status: resp.status().as_u16(),
        client: conn.remote,
        route: None,
        upstream: Some(rt.app_label.clone()),
        endpoint: None,
        consumer: None,
        peer: Some(Arc::from(caller.label())),
        bytes_in: Some(bytes_in),
    }
    .attach(resp)
}

/// Keeps `app_ready` equal to "the app answers" until `shutdown`: a TCP connect to
/// the app, or `GET <app_health_path>` answering 2xx when a path is configured.
pub(crate) async fn watch_app(
    runtime: Arc<ArcSwap<Runtime>>,
    app_ready: Arc<AtomicBool>,
    every: Duration,
    shutdown: Shutdown,
) {
    let stopped = shutdown.wait();
    tokio::pin!(stopped);
    loop {
        let rt = runtime.load_full();
        let ok = probe(&rt, rt.config.inbound.app).await;
        if shutdown.is_triggered() {
            // Draining: readiness stays off whatever the app says.
            return;
        }
        if app_ready.swap(ok, Ordering::SeqCst) != ok {
            tracing::info!(app = %rt.config.inbound.app, ready = ok, "app readiness changed");
        }
        if shutdown.is_triggered() {
            // Shutdown raced the store above: make sure "not ready" wins.
            app_ready.store(false, Ordering::SeqCst);
            return;
        }
        drop(rt);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = &mut stopped => return,
        }
    }
}

async fn probe(rt: &Runtime, app: SocketAddr) -> bool {
    const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
    match &rt.config.inbound.app_health_path {
        None => matches!(
            tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(app)).await,
            Ok(Ok(_))
        ),
        Some(path) => {
            let Ok(req) = Request::get(path.as_str())
                .header(http::header::HOST, app.to_string())
                .header(http::header::USER_AGENT, "weir-sidecar-readiness")
                .body(body::empty())
            else {
                return false;
            };
            matches!(
                tokio::time::timeout(PROBE_TIMEOUT, rt.app_client.send(req, app)).await,
                Ok(Ok(resp)) if resp.status().is_success()
            )
        }
    }
}
