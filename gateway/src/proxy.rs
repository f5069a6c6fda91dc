//! The request path, top to bottom in the order a request takes it:
//!
//! 1. request id (kept when valid, generated otherwise) and server span;
//! 2. route lookup (host, path, method, headers, API version) → 404/405/410;
//! 3. body limit (`413` up front on `Content-Length`, or while streaming);
//! 4. rewrite (path, request headers), hop-by-hop hygiene, `X-Forwarded-*`;
//! 5. upstream choice (weighted split) and endpoint choice (balancer);
//! 6. forward with the route's timeout (`504`), connect failures eject the
//!    endpoint and answer `502`; protocol upgrades become tunnels;
//! 7. response headers (route rewrites, deprecation), metrics, access log.
//!
//! The snapshot is loaded once at step 1 and used to the end: a reload never
//! changes the rules under a request in flight.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use proxy_core::body::{self as pbody, Body};
use proxy_core::forward::{
    self, ForwardError, ForwardedInfo, REQUEST_ID, ensure_request_id, is_upgrade_request,
    prepare_request_headers, strip_hop_by_hop,
};
use proxy_core::problem::Problem;
use proxy_core::server::{ConnInfo, Handler, RequestBody};
use proxy_core::telemetry::{
    AccessLogFormat, ActiveSpan, ClientSpanInfo, ServerSpanInfo, Telemetry,
};
use tokio::time::Instant;

use crate::access_log::{Counted, Logged, PendingLine};
use crate::metrics::GatewayMetrics;
use crate::routing::{Matched, RouteMatch, allow_header};
use crate::snapshot::Snapshot;

/// The gateway's request handler: cheap to clone, one per request.
#[derive(Clone)]
pub struct GatewayHandler {
    pub(crate) state: Arc<ArcSwap<Snapshot>>,
    pub(crate) metrics: Arc<GatewayMetrics>,
    pub(crate) telemetry: Arc<Telemetry>,
}

impl Handler for GatewayHandler {
    async fn handle(self, req: Request<RequestBody>, conn: Arc<ConnInfo>) -> Response<Body> {
        self.serve(req, conn).await
    }
}

/// What the access log and metrics need once the response is known.
struct Outcome {
    route: Option<Arc<str>>,
    route_index: Option<usize>,
    upstream: Option<Arc<str>>,
    endpoint: Option<http::uri::Authority>,
    consumer: Option<String>,
    /// Request body bytes, counted only when an access line will be written.
    bytes_in: Option<Arc<AtomicU64>>,
}

impl GatewayHandler {
    async fn serve(self, mut req: Request<RequestBody>, conn: Arc<ConnInfo>) -> Response<Body> {
        let started = Instant::now();
        let snapshot = self.state.load_full();
        let request_id = ensure_request_id(req.headers_mut());
        let mut span = self.telemetry.server_span(&req, ServerSpanInfo::default());
        let method = req.method().clone();
        let logging = self.telemetry.access_log() != AccessLogFormat::Off;
        // Only kept when an access line will be written.
        let path = logging.then(|| req.uri().path().to_owned());
        let mut outcome = Outcome {
            route: None,
            route_index: None,
            upstream: None,
            endpoint: None,
            consumer: None,
            bytes_in: logging.then(|| Arc::new(AtomicU64::new(0))),
        };

        let mut resp = self
            .route_and_forward(&snapshot, req, &conn, &mut span, &mut outcome)
            .await;

        resp.headers_mut().insert(REQUEST_ID, request_id.clone());
        let status = resp.status();
        span.record_response(status);
        if let Some(slug) = resp
            .headers()
            .get(proxy_core::problem::GENERATED_BY)
            .and_then(|v| v.to_str().ok())
        {
            span.record_error(slug);
        }
        let elapsed = started.elapsed();
        let handles = outcome
            .route_index
            .and_then(|i| snapshot.route_metrics.get(i))
            .unwrap_or(&snapshot.unmatched_metrics);
        handles.record(status.as_u16(), elapsed.as_secs_f64());
        let Some(path) = path else { return resp };
        // The line is written when the response body has gone out, with its size.
        let line = PendingLine {
            format: self.telemetry.access_log(),
            started,
            request_id,
            trace_id: span.trace_id(),
            method,
            path,
            status: status.as_u16(),
            client: conn.remote,
            route: outcome.route,
            upstream: outcome.upstream,
            endpoint: outcome.endpoint,
            consumer: outcome.consumer,
            bytes_in: outcome.bytes_in,
        };
        resp.map(|body| Logged::new(body, line).boxed_unsync())
    }

    async fn route_and_forward(
        &self,
        snapshot: &Snapshot,
        req: Request<RequestBody>,
        conn: &ConnInfo,
        span: &mut ActiveSpan,
        outcome: &mut Outcome,
    ) -> Response<Body> {
        if has_dot_segment(req.uri().path()) {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-path",
                "Invalid request path",
            )
            .detail("the path contains a `.` or `..` segment")
            .request_id_from(req.headers())
            .into_response();
        }
        let lookup =
            snapshot
                .routes
                .lookup(req.method(), req.uri(), req.headers(), SystemTime::now());
        let matched = match lookup {
            RouteMatch::Matched(m) => m,
            RouteMatch::NotFound => {
                return Problem::new(
                    StatusCode::NOT_FOUND,
                    "route-not-found",
                    "No route matches this request",
                )
                .detail(format!(
                    "no route for {} {}",
                    req.method(),
                    req.uri().path()
                ))
                .request_id_from(req.headers())
                .into_response();
            }
            RouteMatch::MethodNotAllowed { allow } => {
                // A CORS preflight asks about another method: let the route
                // that takes that method answer it.
                if let Some(resp) = self.preflight(snapshot, &req, outcome) {
                    return resp;
                }
                return Problem::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method-not-allowed",
                    "Method not allowed",
                )
                .detail(format!("{} is not allowed here", req.method()))
                .request_id_from(req.headers())
                .header(header::ALLOW, allow_header(&allow))
                .into_response();
            }
            RouteMatch::Gone { route } => {
                outcome.route = Some(route.name().clone());
                outcome.route_index = Some(route.index());
                let mut resp = Problem::new(
                    StatusCode::GONE,
                    "api-version-sunset",
                    "This API version has been retired",
                )
                .detail(format!("route {} passed its sunset date", route.name()))
                .request_id_from(req.headers())
                .into_response();
                route.apply_response_headers(resp.headers_mut());
                return resp;
            }
        };
        let route = matched.route;
        outcome.route = Some(route.name().clone());
        outcome.route_index = Some(route.index());
        let http_route = snapshot
            .route_paths
            .get(route.index())
            .map_or("", String::as_str);
        span.set_route(http_route, route.name());

        // Policies: forged identity headers stripped, CORS, authentication,
        // rate limits (the strictest decides).
        let (mut parts, body) = req.into_parts();
        let admitted = match snapshot.route_policies.get(route.index()) {
            Some(policy) => {
                match snapshot
                    .policies
                    .check(policy, &mut parts, conn.remote.ip())
                    .await
                {
                    Ok(a) => Some(a),
                    Err(rejection) => {
                        if rejection.status() == StatusCode::TOO_MANY_REQUESTS {
                            span.set_ratelimit_decision("limited");
                        }
                        let mut resp = rejection.into_response().map(pbody::boxed);
                        route.apply_response_headers(resp.headers_mut());
                        return resp;
                    }
                }
            }
            None => None,
        };
        if let Some(consumer) = admitted
            .as_ref()
            .and_then(|a| a.identity.as_ref())
            .and_then(|i| i.consumer.clone())
        {
            outcome.consumer = Some(consumer);
        }
        let req = Request::from_parts(parts, body);

        let mut resp = self
            .forward(snapshot, &matched, req, conn, span, outcome)
            .await;
        route.apply_response_headers(resp.headers_mut());
        if let Some(a) = admitted {
            for (name, value) in a.response_headers.iter() {
                resp.headers_mut().append(name.clone(), value.clone());
            }
        }
        resp
    }

    /// Answers a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`)
    /// with the policies of the route that serves the requested method.
    fn preflight(
        &self,
        snapshot: &Snapshot,
        req: &Request<RequestBody>,
        outcome: &mut Outcome,
    ) -> Option<Response<Body>> {
        if req.method() != http::Method::OPTIONS {
            return None;
        }
        let asked: http::Method = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)?
            .to_str()
            .ok()?
            .parse()
            .ok()?;
        let RouteMatch::Matched(m) =
            snapshot
                .routes
                .lookup(&asked, req.uri(), req.headers(), SystemTime::now())
        else {
            return None;
        };
        let policy = snapshot.route_policies.get(m.route.index())?;
        outcome.route = Some(m.route.name().clone());
        outcome.route_index = Some(m.route.index());
        let mut parts = Request::new(()).into_parts().0;
        parts.method = req.method().clone();
        parts.uri = req.uri().clone();
        parts.headers = req.headers().clone();
        snapshot
            .policies
            .preflight(policy, &parts)
            .map(|rejection| rejection.into_response().map(pbody::boxed))
    }

    async fn forward(
        &self,
        snapshot: &Snapshot,
        matched: &Matched<'_>,
        mut req: Request<RequestBody>,
        conn: &ConnInfo,
        span: &mut ActiveSpan,
        outcome: &mut Outcome,
    ) -> Response<Body> {
        let route = matched.route;
        let limit = route
            .max_body_bytes()
            .unwrap_or(snapshot.limits.max_body_bytes.get());
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return ForwardError::BodyTooLarge { limit }
                .to_problem()
                .request_id_from(req.headers())
                .into_response();
        }

        // The client side of a protocol switch must be claimed before the
        // request is taken apart.
        let client_upgrade =
            is_upgrade_request(req.headers()).then(|| hyper::upgrade::on(&mut req));

        let Some(upstream) = snapshot.upstreams.get(matched.upstream()) else {
            return ForwardError::NoEndpoint(matched.upstream().to_owned())
                .to_problem()
                .request_id_from(req.headers())
                .into_response();
        };
        let upstream_name: &str = &upstream.name;
        outcome.upstream = Some(upstream.name.clone());
        span.set_upstream(upstream_name);
        // Passively ejected endpoints are skipped; when all are, the ones
        // passing health checks are tried anyway rather than failing outright.
        let Some(endpoint) = upstream
            .group
            .pick()
            .or_else(|| upstream.group.pick_where(|e| e.is_healthy()))
        else {
            self.count_upstream_error(upstream_name, "no-healthy-upstream");
            return ForwardError::NoEndpoint(upstream_name.to_owned())
                .to_problem()
                .request_id_from(req.headers())
                .into_response();
        };

        // The path the upstream sees: the request's own (no copy) unless the
        // route rewrote it.
        let rewritten: Option<http::uri::PathAndQuery> = match &matched.forward {
            None => None,
            Some(p) => match p.parse() {
                Ok(pq) => Some(pq),
                Err(_) => {
                    return ForwardError::InvalidRequest(
                        "rewritten path is not a valid URI".into(),
                    )
                    .to_problem()
                    .request_id_from(req.headers())
                    .into_response();
                }
            },
        };
        let host: Option<HeaderValue> = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let (mut parts, body) = req.into_parts();
        prepare_request_headers(
            &mut parts.headers,
            ForwardedInfo {
                client_ip: conn.remote.ip(),
                proto: conn.scheme(),
                host: host.as_ref(),
                client_ip_header: Some(conn.remote_ip_header()),
            },
        );
        route.apply_request_headers(&mut parts.headers);
        let pq = rewritten.or_else(|| parts.uri.path_and_query().cloned());
        let mut uri_parts = http::uri::Parts::default();
        uri_parts.path_and_query = pq;
        if let Ok(uri) = http::Uri::from_parts(uri_parts) {
            parts.uri = uri;
        }
        if let Some(h) = host
            && !parts.headers.contains_key(header::HOST)
        {
            parts.headers.insert(header::HOST, h);
        }
        let request_id = parts.headers.get(REQUEST_ID).cloned();
        let endpoint_label = endpoint.authority().as_str();
        let mut client_span = self.telemetry.client_span(
            span.context(),
            &mut parts,
            ClientSpanInfo {
                attempt: 1,
                retry_reason: None,
                upstream: Some(upstream_name),
                endpoint: Some(endpoint_label),
            },
        );
        let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
        let body = match &outcome.bytes_in {
            Some(counter) => pbody::boxed(Limited::new(
                Counted::new(body, counter.clone()),
                limit_usize,
            )),
            None => pbody::boxed(Limited::new(body, limit_usize)),
        };
        outcome.endpoint = Some(endpoint.authority().clone());
        let out = Request::from_parts(parts, body);

        let in_flight = endpoint.start();
        let sent = upstream.client.send_to(out, endpoint.authority().clone());
        let result = match route.timeout() {
            Some(t) => match tokio::time::timeout(t, sent).await {
                Ok(r) => {
                    r.map_err(|e| ForwardError::from_client(endpoint_label.to_owned(), e, limit))
                }
                Err(_) => Err(ForwardError::Timeout(t)),
            },
            None => sent
                .await
                .map_err(|e| ForwardError::from_client(endpoint_label.to_owned(), e, limit)),
        };
        let mut resp = match result {
            Ok(r) => r,
            Err(err) => {
                drop(in_flight);
                if err.is_connect() {
                    let cfg = &upstream.config.passive_ejection;
                    let d = endpoint.eject(cfg.base.get(), cfg.max.get());
                    tracing::warn!(upstream = upstream_name, endpoint = %endpoint.addr, ejected_for = ?d, "connection refused; endpoint ejected");
                }
                self.count_upstream_error(upstream_name, err.kind());
                client_span.record_error(err.kind());
                let mut problem = err.to_problem();
                if let Some(id) = request_id.as_ref().and_then(|v| v.to_str().ok()) {
                    problem = problem.request_id(id);
                }
                return problem.into_response();
            }
        };
        in_flight.finish();
        endpoint.mark_success();
        client_span.record_response(resp.status());
        drop(client_span);

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            match client_upgrade {
                Some(client) => forward::tunnel_upgrade(client, hyper::upgrade::on(&mut resp)),
                None => {
                    return ForwardError::InvalidRequest(
                        "upstream switched protocols unasked".into(),
                    )
                    .to_problem()
                    .into_response();
                }
            }
            strip_hop_by_hop(resp.headers_mut(), true);
        } else {
            strip_hop_by_hop(resp.headers_mut(), false);
        }
        resp.map(pbody::boxed)
    }

    fn count_upstream_error(&self, upstream: &str, kind: &'static str) {
        self.metrics
            .upstream_errors
            .get_or_create(&crate::metrics::UpstreamErrorLabels {
                upstream: upstream.to_owned(),
                kind,
            })
            .inc();
    }
}

/// Whether `path` has a `.` or `..` segment, plain or percent-encoded. Such
/// a path matches one route here but names another once the upstream
/// resolves it (`/public/../admin` would pass the `/public` route's policy
/// and reach `/admin`), so it is refused rather than guessed at. Clients
/// resolve dot segments before sending (RFC 3986 §5.2.4), so honest
/// requests never carry them.
fn has_dot_segment(path: &str) -> bool {
    fn is_dot(s: &[u8]) -> bool {
        s == b"." || s.eq_ignore_ascii_case(b"%2e")
    }
    path.split('/').any(|seg| {
        let s = seg.as_bytes();
        match s.len() {
            1 | 3 => is_dot(s),
            2 | 4 | 6 => (1..s.len()).any(|i| is_dot(&s[..i]) && is_dot(&s[i..])),
            _ => false,
        }
    })
}
