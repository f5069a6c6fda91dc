//! Phase 2, policy: the route's policies (`weir_policy`), in their order:
//! forged identity headers removed (on every route), CORS, authentication
//! and scopes (identity headers added, consumed credentials removed), then
//! every rate limit of the route (the strictest decides).
//!
//! The identity headers added here reach the upstream as set: the client's
//! hop-by-hop headers were removed before this phase, and nothing after it
//! removes a header (see the module docs of `proxy`).

use std::time::SystemTime;

use http::request::Parts;
use http::{Method, Response, StatusCode, header};
use proxy_core::body::{self as pbody, Body};
use proxy_core::server::ConnInfo;

use super::admit::Routed;
use super::{Ctx, Flow};
use crate::routing::RouteMatch;
use crate::snapshot::Snapshot;

/// Applies the route's policies; a refusal (or a CORS preflight) answers
/// the request here.
pub(super) async fn check<'s>(
    snapshot: &'s Snapshot,
    mut routed: Routed<'s>,
    conn: &ConnInfo,
    ctx: &mut Ctx<'s>,
) -> Flow<Routed<'s>> {
    let Some(policy) = snapshot.route_policies.get(routed.matched.route.index()) else {
        return Flow::Continue(routed);
    };
    match snapshot
        .policies
        .check(policy, &mut routed.parts, conn.remote.ip())
        .await
    {
        Ok(admitted) => {
            ctx.consumer = admitted.identity.and_then(|i| i.consumer);
            if !admitted.response_headers.is_empty() {
                ctx.policy_headers = Some(admitted.response_headers);
            }
            Flow::Continue(routed)
        }
        Err(rejection) => {
            if rejection.status() == StatusCode::TOO_MANY_REQUESTS {
                ctx.span.set_ratelimit_decision("limited");
            }
            Flow::Break(rejection.into_response().map(pbody::boxed))
        }
    }
}

/// Answers a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`)
/// that no route took for `OPTIONS`, with the policies of the route that
/// serves the requested method. Called from `admit` on a `405`.
pub(super) fn preflight<'s>(
    snapshot: &'s Snapshot,
    parts: &Parts,
    host: &str,
    ctx: &mut Ctx<'s>,
) -> Option<Response<Body>> {
    if parts.method != Method::OPTIONS {
        return None;
    }
    let asked: Method = parts
        .headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    let RouteMatch::Matched(m) =
        snapshot
            .routes
            .lookup_at(host, &asked, &parts.uri, &parts.headers, SystemTime::now())
    else {
        return None;
    };
    let policy = snapshot.route_policies.get(m.route.index())?;
    // Counted under the route that answers; its response headers are for
    // its own method's responses, not this one.
    ctx.route = Some(m.route);
    snapshot
        .policies
        .preflight(policy, parts)
        .map(|rejection| rejection.into_response().map(pbody::boxed))
}
