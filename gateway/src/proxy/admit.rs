//! Phase 1, admit: what the gateway decides before any policy runs.
//!
//! [`begin`] opens the request: the client's hop-by-hop headers go first,
//! before the gateway adds anything, then the request id and the server
//! span. [`route`] settles the one authority, refuses dot segments, looks
//! the route up and checks a declared body size against the limit.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, StatusCode};
use proxy_core::forward::{ForwardError, ensure_request_id, is_upgrade_request, strip_hop_by_hop};
use proxy_core::grpc::Protocol;
use proxy_core::problem::Problem;
use proxy_core::server::RequestBody;
use proxy_core::telemetry::{AccessLogFormat, ServerSpanInfo, Telemetry};
use tokio::time::Instant;

use super::authority::authority;
use super::{Ctx, Flow, policy};
use crate::routing::{Matched, RouteMatch, allow_header};
use crate::snapshot::Snapshot;

/// A request that matched a route and may be forwarded.
pub(super) struct Routed<'s> {
    pub(super) parts: Parts,
    pub(super) body: RequestBody,
    pub(super) matched: Matched<'s>,
    /// The one authority (see `authority`), for `Host` and `X-Forwarded-Host`.
    pub(super) host: Option<HeaderValue>,
    /// The request body limit of the route.
    pub(super) body_limit: u64,
}

/// Opens the request and returns its context.
///
/// Hop-by-hop headers, including every name the client's `Connection`
/// header lists, are removed here and nowhere later on the request path:
/// removing them after the gateway has added its own headers would let a
/// client strip the request id or the identity headers by naming them.
pub(super) fn begin<'s>(telemetry: &Telemetry, req: &mut Request<RequestBody>) -> Ctx<'s> {
    let started = Instant::now();
    let headers = req.headers_mut();
    let upgrade = is_upgrade_request(headers);
    strip_hop_by_hop(headers, upgrade);
    let request_id = ensure_request_id(headers);
    let mut span = telemetry.server_span(&*req, ServerSpanInfo::default());
    let grpc = Protocol::of(req.headers());
    if grpc.is_some()
        && let Some((service, method)) = proxy_core::grpc::service_method(req.uri().path())
    {
        span.set_rpc(service, method);
    }
    let logging = telemetry.access_log() != AccessLogFormat::Off;
    Ctx {
        started,
        request_id,
        span,
        // Only copied when an access line will be written.
        log: logging.then(|| (req.method().clone(), req.uri().path().to_owned())),
        bytes_in: logging.then(|| Arc::new(AtomicU64::new(0))),
        route: None,
        route_headers: false,
        upstream: None,
        endpoint: None,
        consumer: None,
        policy_headers: None,
        grpc,
        grpc_web_text: false,
    }
}

/// Finds the request's route, or answers it (400, 404, 405, 410, 413).
pub(super) fn route<'s>(
    snapshot: &'s Snapshot,
    req: Request<RequestBody>,
    ctx: &mut Ctx<'s>,
) -> Flow<Routed<'s>> {
    let (parts, body) = req.into_parts();
    let host = match authority(parts.version, &parts.uri, &parts.headers) {
        Ok(h) => h,
        Err(e) => {
            return Flow::Break(
                ctx.problem(
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "ambiguous-authority",
                        "The request's authority is missing or ambiguous",
                    )
                    .detail(e.detail()),
                ),
            );
        }
    };
    if has_dot_segment(parts.uri.path()) {
        return Flow::Break(
            ctx.problem(
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-path",
                    "Invalid request path",
                )
                .detail("the path contains a `.` or `..` segment"),
            ),
        );
    }
    let host_str = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
    let lookup = snapshot.routes.lookup_at(
        host_str,
        &parts.method,
        &parts.uri,
        &parts.headers,
        SystemTime::now(),
    );
    let matched = match lookup {
        RouteMatch::Matched(m) => m,
        RouteMatch::NotFound => {
            return Flow::Break(
                ctx.problem(
                    Problem::new(
                        StatusCode::NOT_FOUND,
                        "route-not-found",
                        "No route matches this request",
                    )
                    .detail(format!(
                        "no route for {} {}",
                        parts.method,
                        parts.uri.path()
                    )),
                ),
            );
        }
        RouteMatch::MethodNotAllowed { allow } => {
            // A CORS preflight asks about another method: let the route
            // that takes that method answer it.
            if let Some(resp) = policy::preflight(snapshot, &parts, host_str, ctx) {
                return Flow::Break(resp);
            }
            return Flow::Break(
                ctx.problem(
                    Problem::new(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method-not-allowed",
                        "Method not allowed",
                    )
                    .detail(format!("{} is not allowed here", parts.method))
                    .header(header::ALLOW, allow_header(&allow)),
                ),
            );
        }
        RouteMatch::Gone { route } => {
            ctx.route = Some(route);
            ctx.route_headers = true;
            return Flow::Break(
                ctx.problem(
                    Problem::new(
                        StatusCode::GONE,
                        "api-version-sunset",
                        "This API version has been retired",
                    )
                    .detail(format!("route {} passed its sunset date", route.name())),
                ),
            );
        }
        RouteMatch::BadVersion { header } => {
            return Flow::Break(
                ctx.problem(
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid-api-version",
                        "Invalid API version",
                    )
                    .detail(format!(
                        "the {header} header does not name a version such as 2 or v2"
                    )),
                ),
            );
        }
    };
    let route = matched.route;
    ctx.route = Some(route);
    ctx.route_headers = true;
    let http_route = snapshot
        .route_paths
        .get(route.index())
        .map_or("", String::as_str);
    ctx.span.set_route(http_route, route.name());
    if ctx.grpc.is_some()
        && let Some((service, method)) = proxy_core::grpc::service_method(parts.uri.path())
    {
        // The RPC conventions name a call's span `service/method`.
        ctx.span.set_rpc(service, method);
    }

    let body_limit = route
        .max_body_bytes()
        .unwrap_or(snapshot.limits.max_body_bytes.get());
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > body_limit) {
        return Flow::Break(
            ctx.problem(ForwardError::BodyTooLarge { limit: body_limit }.to_problem()),
        );
    }
    Flow::Continue(Routed {
        parts,
        body,
        matched,
        host,
        body_limit,
    })
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
