//! Phase 3, upstream: where the request goes and what it looks like there.
//!
//! The route's weighted split picks the upstream, its balancer the endpoint
//! (passively ejected endpoints skipped; when all are, the ones passing
//! health checks are tried rather than failing outright). Then the request
//! is rewritten for the upstream: its path (the request's own, not copied,
//! unless the route rewrites it), `X-Forwarded-*`, the route's request
//! headers and `Host`, the one authority `admit` settled. Headers are only
//! added or replaced here, never stripped on the client's say-so.

use std::sync::Arc;

use http::header::{self, HeaderName};
use http::uri::PathAndQuery;
use http::{Request, Uri, Version};
use http_body_util::{Either, Limited};
use hyper::upgrade::OnUpgrade;
use proxy_core::balance::Endpoint;
use proxy_core::body::{self as pbody, Body};
use proxy_core::config::Protocol;
use proxy_core::forward::{
    BodyOutcome, ClientBody, ForwardError, ForwardedInfo, is_upgrade_request, set_forwarded_headers,
};
use proxy_core::server::ConnInfo;

use super::admit::Routed;
use super::{Ctx, Flow};
use crate::metrics::{GatewayMetrics, UpstreamErrorLabels};
use crate::snapshot::Snapshot;
use crate::upstream::Upstream;
use proxy_core::telemetry::access_log::Counted;

const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The request as the upstream will receive it, and where it goes.
pub(super) struct Outgoing<'s> {
    pub(super) req: Request<Body>,
    pub(super) upstream: &'s Upstream,
    pub(super) endpoint: Arc<Endpoint>,
    /// The client side of a protocol switch, claimed before the request
    /// was taken apart.
    pub(super) client_upgrade: Option<OnUpgrade>,
    pub(super) body_limit: u64,
    /// How the client's body failed, for upstreams that may speak HTTP/2.
    pub(super) body_outcome: Option<Arc<BodyOutcome>>,
}

/// Chooses upstream and endpoint and builds the upstream request; answers
/// `503` when there is no endpoint to send to.
pub(super) fn prepare<'s>(
    metrics: &GatewayMetrics,
    snapshot: &'s Snapshot,
    routed: Routed<'s>,
    conn: &ConnInfo,
    ctx: &mut Ctx<'s>,
) -> Flow<Outgoing<'s>> {
    let Routed {
        mut parts,
        body,
        matched,
        host,
        body_limit,
    } = routed;
    let client_upgrade = is_upgrade_request(&parts.headers)
        .then(|| parts.extensions.remove::<OnUpgrade>())
        .flatten();

    let Some(upstream) = snapshot.upstreams.get(matched.upstream()) else {
        return Flow::Break(
            ctx.problem(ForwardError::NoEndpoint(matched.upstream().to_owned()).to_problem()),
        );
    };
    ctx.upstream = Some(upstream);
    ctx.span.set_upstream(&upstream.name);
    let Some(endpoint) = upstream
        .group
        .pick()
        .or_else(|| upstream.group.pick_where(|e| e.is_healthy()))
    else {
        count_upstream_error(metrics, &upstream.name, "no-healthy-upstream");
        return Flow::Break(
            ctx.problem(ForwardError::NoEndpoint(upstream.name.to_string()).to_problem()),
        );
    };

    let rewritten: Option<PathAndQuery> = match &matched.forward {
        None => None,
        Some(p) => match p.parse() {
            Ok(pq) => Some(pq),
            Err(_) => {
                return Flow::Break(
                    ctx.problem(
                        ForwardError::InvalidRequest("rewritten path is not a valid URI".into())
                            .to_problem(),
                    ),
                );
            }
        },
    };

    set_forwarded_headers(
        &mut parts.headers,
        ForwardedInfo {
            client_ip: conn.remote.ip(),
            proto: conn.scheme(),
            host: host.as_ref(),
            client_ip_header: Some(conn.remote_ip_header()),
        },
    );
    if host.is_none() {
        // No authority to report: a client's own value would pass for ours.
        parts.headers.remove(X_FORWARDED_HOST);
    }
    matched.route.apply_request_headers(&mut parts.headers);
    let mut uri_parts = http::uri::Parts::default();
    uri_parts.path_and_query = rewritten.or_else(|| parts.uri.path_and_query().cloned());
    if let Ok(uri) = Uri::from_parts(uri_parts) {
        parts.uri = uri;
    }
    if let Some(h) = host
        && !parts.headers.contains_key(header::HOST)
    {
        parts.headers.insert(header::HOST, h);
    }

    // An HTTP/2 upstream client reports a failed body only as a reset
    // stream, so the body tells the send phase itself (one allocation, on
    // those upstreams only).
    let may_be_h2 = match upstream.config.protocol {
        Protocol::Http1 => false,
        Protocol::Http2 => true,
        Protocol::Auto => parts.version == Version::HTTP_2,
    };
    let body_outcome = may_be_h2.then(|| Arc::new(BodyOutcome::default()));
    let limit = usize::try_from(body_limit).unwrap_or(usize::MAX);
    // A gRPC-Web-text body is decoded on its way up; the limit applies to
    // what the upstream gets.
    let body = if ctx.grpc_web_text {
        Either::Left(crate::grpc_web::Decoded::new(body))
    } else {
        Either::Right(body)
    };
    let body = match &ctx.bytes_in {
        Some(counter) => client_body(
            Limited::new(Counted::new(body, counter.clone()), limit),
            &body_outcome,
        ),
        None => client_body(Limited::new(body, limit), &body_outcome),
    };
    Flow::Continue(Outgoing {
        req: Request::from_parts(parts, body),
        upstream,
        endpoint,
        client_upgrade,
        body_limit,
        body_outcome,
    })
}

/// The client's body as the upstream gets it: limited, errors marked as the
/// client's, trailers dropped (see [`ClientBody`]).
fn client_body<B>(limited: B, outcome: &Option<Arc<BodyOutcome>>) -> Body
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<proxy_core::body::BoxError>,
{
    match outcome {
        Some(o) => pbody::boxed(ClientBody::watched(limited, o.clone())),
        None => pbody::boxed(ClientBody::new(limited)),
    }
}

/// Counts a failure against the upstream (`weir_upstream_errors_total`).
pub(super) fn count_upstream_error(metrics: &GatewayMetrics, upstream: &str, kind: &'static str) {
    metrics
        .upstream_errors
        .get_or_create(&UpstreamErrorLabels {
            upstream: upstream.to_owned(),
            kind,
        })
        .inc();
}
