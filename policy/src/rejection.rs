//! A request the policies answer themselves, and its `problem+json` response.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use proxy_core::problem::Problem;

use crate::auth::error::{AuthError, AuthErrorKind};
use crate::ratelimit::headers::ceil_secs;

/// Why the gateway answers instead of the upstream.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RejectionKind {
    /// 401 or 403; the error carries the reason slug.
    Auth(AuthError),
    /// 429 from the named policy.
    RateLimited {
        policy: Arc<str>,
        retry_after: Duration,
    },
    /// 503: the shared limiter failed and the policy fails closed.
    LimiterUnavailable { policy: Arc<str> },
    /// 204: a CORS preflight, answered without the upstream (not an error).
    CorsPreflight,
    /// 403: a CORS preflight from an origin, method or header not allowed.
    CorsRefused(&'static str),
}

/// The answer to send instead of forwarding. Build the HTTP response with
/// [`Rejection::into_response`]; log [`Rejection::reason`].
#[derive(Clone, Debug)]
pub struct Rejection {
    kind: RejectionKind,
    request_id: Option<HeaderValue>,
    headers: HeaderMap,
}

impl Rejection {
    pub(crate) fn new(
        kind: RejectionKind,
        request_id: Option<HeaderValue>,
        headers: HeaderMap,
    ) -> Self {
        Self {
            kind,
            request_id,
            headers,
        }
    }

    pub fn kind(&self) -> &RejectionKind {
        &self.kind
    }

    pub fn status(&self) -> StatusCode {
        match &self.kind {
            RejectionKind::Auth(e) => e.status(),
            RejectionKind::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            RejectionKind::LimiterUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            RejectionKind::CorsPreflight => StatusCode::NO_CONTENT,
            RejectionKind::CorsRefused(_) => StatusCode::FORBIDDEN,
        }
    }

    /// A stable slug for access logs and metrics (`token_expired`,
    /// `rate_limited`, …); never contains a credential.
    pub fn reason(&self) -> &'static str {
        match &self.kind {
            RejectionKind::Auth(e) => e.reason,
            RejectionKind::RateLimited { .. } => "rate_limited",
            RejectionKind::LimiterUnavailable { .. } => "rate_limiter_unavailable",
            RejectionKind::CorsPreflight => "cors_preflight",
            RejectionKind::CorsRefused(_) => "cors_refused",
        }
    }

    /// Headers the response will carry (challenge, `Retry-After`, rate-limit
    /// and CORS headers).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    fn problem(&self) -> Option<(&'static str, &'static str, String)> {
        Some(match &self.kind {
            RejectionKind::Auth(e) => match e.kind {
                AuthErrorKind::Unauthenticated => {
                    ("unauthorized", "Unauthorized", e.description.clone())
                }
                AuthErrorKind::Forbidden => ("forbidden", "Forbidden", e.description.clone()),
            },
            RejectionKind::RateLimited {
                policy,
                retry_after,
            } => (
                "rate-limited",
                "Too Many Requests",
                format!(
                    "rate limit {policy} exceeded; retry in {}s",
                    ceil_secs(*retry_after).max(1)
                ),
            ),
            RejectionKind::LimiterUnavailable { policy } => (
                "rate-limiter-unavailable",
                "Service Unavailable",
                format!("rate limit {policy} cannot be checked right now"),
            ),
            RejectionKind::CorsRefused(why) => (
                "cors-refused",
                "Forbidden",
                format!("CORS preflight refused: {why}"),
            ),
            RejectionKind::CorsPreflight => return None,
        })
    }

    /// The response: `application/problem+json` (RFC 9457) rendered by
    /// `proxy_core::problem` like every error Weir generates (`type`, `title`,
    /// `status`, `detail`, `request_id`, `x-weir-error: <slug>`,
    /// `x-request-id`) with this rejection's headers; an empty 204 for a
    /// preflight.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let status = self.status();
        let Some((slug, title, detail)) = self.problem() else {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = status;
            *resp.headers_mut() = self.headers;
            if let Some(id) = self.request_id {
                resp.headers_mut().insert("x-request-id", id);
            }
            return resp;
        };
        let mut problem = Problem::new(status, slug, title)
            .detail(detail)
            .headers(self.headers);
        if let Some(id) = self.request_id.as_ref().and_then(|v| v.to_str().ok()) {
            problem = problem.request_id(id);
        }
        let mut resp = problem.into_bytes_response().map(Full::new);
        if let Some(id) = self.request_id {
            resp.headers_mut().insert("x-request-id", id);
        }
        resp
    }

    pub(crate) fn auth(
        e: AuthError,
        scopes: &[String],
        request_id: Option<HeaderValue>,
        mut headers: HeaderMap,
    ) -> Self {
        if let Ok(v) = HeaderValue::from_str(&e.challenge(scopes)) {
            headers.insert(WWW_AUTHENTICATE, v);
        }
        Self::new(RejectionKind::Auth(e), request_id, headers)
    }

    pub(crate) fn rate_limited(
        policy: Arc<str>,
        retry_after: Duration,
        request_id: Option<HeaderValue>,
        mut headers: HeaderMap,
    ) -> Self {
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from(ceil_secs(retry_after).max(1)),
        );
        Self::new(
            RejectionKind::RateLimited {
                policy,
                retry_after,
            },
            request_id,
            headers,
        )
    }
}
