//! The issuer's HTTP API (served over TLS only).
//!
//! ```text
//! POST /v1/certificates
//! Authorization: Bearer <bootstrap token | projected ServiceAccount token>
//! Content-Type: application/json
//!
//! { "csr": "-----BEGIN CERTIFICATE REQUEST-----\n..." }
//!
//! 200 OK
//! { "spiffe_id": "spiffe://weir.local/ns/default/sa/order",
//!   "chain": "<leaf PEM><issuer PEM>",
//!   "trust_anchors": "<anchor PEM>",
//!   "not_after": "2026-12-08T20:00:00Z" }
//! ```
//!
//! The token decides the identity; the CSR only supplies the public key (see
//! `sign.rs`). Failures are `application/problem+json` with these types
//! (`https://weir.dev/problems/<type>`):
//!
//! | status | type | when |
//! | --- | --- | --- |
//! | 400 | `identity-bad-request` | body is not `{"csr": "..."}` JSON |
//! | 400 | `identity-bad-csr` | not a CSR, or its signature does not verify |
//! | 401 | `identity-unauthenticated` | no bearer token, or the token is refused |
//! | 403 | `identity-forbidden` | the token's workload has no valid SPIFFE ID here |
//! | 404 / 405 | `not-found` / `method-not-allowed` | other paths and methods |
//! | 413 | `identity-request-too-large` | body over 64 KiB |
//! | 500 | `identity-signing-failed` | the issuer could not sign (its certificate expired) |
//! | 503 | `identity-authn-unavailable` | the token could not be checked now; retry |
//!
//! `GET /healthz` answers `200 ok` for probes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use proxy_core::body::{self, Body};
use proxy_core::identity::SpiffeId;
use proxy_core::problem::Problem;
use proxy_core::server::{ConnInfo, Handler, RequestBody};
use serde::{Deserialize, Serialize};

use crate::authn::{Authenticator, AuthnError};
use crate::ca::Ca;
use crate::sign::{SignError, sign_csr};

/// The one endpoint.
pub const CERTIFICATES_PATH: &str = "/v1/certificates";
/// The largest request body read: a P-256 CSR is well under 1 KiB.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateRequest {
    pub csr: String,
}

/// The response body.
#[derive(Debug, Serialize, Deserialize)]
pub struct CertificateResponse {
    pub spiffe_id: String,
    pub chain: String,
    pub trust_anchors: String,
    /// RFC 3339, UTC.
    pub not_after: String,
}

/// The request handler (cheap to clone).
#[derive(Clone)]
pub(crate) struct Api(Arc<Inner>);

struct Inner {
    ca: Ca,
    authn: Arc<dyn Authenticator>,
    lifetime: Duration,
}

impl Api {
    pub(crate) fn new(ca: Ca, authn: Arc<dyn Authenticator>, lifetime: Duration) -> Self {
        Self(Arc::new(Inner {
            ca,
            authn,
            lifetime,
        }))
    }

    pub(crate) fn ca(&self) -> &Ca {
        &self.0.ca
    }

    async fn certificates(
        self,
        req: Request<RequestBody>,
        conn: Arc<ConnInfo>,
    ) -> Result<Response<Body>, Problem> {
        let token = bearer(req.headers())
            .ok_or_else(unauthenticated)?
            .to_owned();
        let too_large = || {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "identity-request-too-large",
                "Request too large",
            )
            .detail(format!("the body may be at most {MAX_REQUEST_BYTES} bytes"))
        };
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_REQUEST_BYTES) {
            return Err(too_large());
        }
        let bytes = Limited::new(req.into_body(), MAX_REQUEST_BYTES)
            .collect()
            .await
            .map_err(|_| too_large())?
            .to_bytes();
        let request: CertificateRequest = serde_json::from_slice(&bytes).map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "identity-bad-request",
                "Bad certificate request",
            )
            .detail(format!("expected {{\"csr\": \"<PEM>\"}}: {e}"))
        })?;

        let workload = self.0.authn.authenticate(&token).await.map_err(|e| {
            tracing::warn!(remote = %conn.remote, error = %e, "certificate request refused");
            match e {
                AuthnError::Refused(_) => unauthenticated(),
                AuthnError::Unavailable(reason) => Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "identity-authn-unavailable",
                    "Cannot check the token now",
                )
                .detail(reason)
                .header(RETRY_AFTER, HeaderValue::from_static("5")),
            }
        })?;
        let ca = &self.0.ca;
        let id = SpiffeId::for_workload(
            ca.trust_domain(),
            &workload.namespace,
            &workload.service_account,
        )
        .map_err(|e| {
            Problem::new(
                StatusCode::FORBIDDEN,
                "identity-forbidden",
                "No identity for this workload",
            )
            .detail(e.to_string())
        })?;
        let issued = sign_csr(ca, &request.csr, &id, self.0.lifetime, SystemTime::now()).map_err(
            |e| match e {
                SignError::BadCsr(_) => Problem::new(
                    StatusCode::BAD_REQUEST,
                    "identity-bad-csr",
                    "Invalid certificate signing request",
                )
                .detail(e.to_string()),
                SignError::Sign(_) | SignError::IssuerExpired => {
                    tracing::error!(error = %e, "cannot sign");
                    Problem::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "identity-signing-failed",
                        "The issuer cannot sign",
                    )
                    .detail(e.to_string())
                }
            },
        )?;
        tracing::info!(
            spiffe_id = %issued.id,
            remote = %conn.remote,
            not_after = %humantime::format_rfc3339_seconds(issued.not_after),
            "certificate issued"
        );
        let body = CertificateResponse {
            spiffe_id: issued.id.to_string(),
            chain: issued.chain_pem,
            trust_anchors: ca.anchor_pem().to_owned(),
            not_after: humantime::format_rfc3339_seconds(issued.not_after).to_string(),
        };
        let mut resp = Response::new(body::full(Bytes::from(
            serde_json::to_vec(&body).unwrap_or_default(),
        )));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        Ok(resp)
    }
}

impl Handler for Api {
    async fn handle(self, req: Request<RequestBody>, conn: Arc<ConnInfo>) -> Response<Body> {
        let headers = req.headers().clone();
        let result = match (req.uri().path(), req.method()) {
            (CERTIFICATES_PATH, &Method::POST) => self.certificates(req, conn).await,
            ("/healthz", &Method::GET) => Ok(Response::new(body::full("ok\n"))),
            (CERTIFICATES_PATH, _) => Err(Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            )
            .header(ALLOW, HeaderValue::from_static("POST"))),
            _ => Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
            )),
        };
        result.unwrap_or_else(|p| p.request_id_from(&headers).into_response())
    }
}

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn unauthenticated() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "identity-unauthenticated",
        "Unauthenticated",
    )
    .detail("a valid bearer token for this issuer is required")
    .header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}
