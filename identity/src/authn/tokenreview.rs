//! Kubernetes: a pod's projected ServiceAccount token, checked by the API
//! server with the `TokenReview` API.
//!
//! The sidecar sends the token the kubelet projected into its pod with the
//! issuer's audience (`weir-identity` by default). The issuer posts it to
//! `POST /apis/authentication.k8s.io/v1/tokenreviews` with that audience; the
//! API server answers whether it is valid, for whom
//! (`system:serviceaccount:<namespace>:<name>`) and for which audiences. A
//! token made for another audience (the default API-server audience, say)
//! is refused, so a token leaked from some other use cannot buy a
//! certificate. The issuer's own ServiceAccount needs the
//! `system:auth-delegator` ClusterRole for the call.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{StatusCode, Uri};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

use super::{Authenticator, AuthnError, AuthnFuture, Workload};
use crate::https::{self, client_config};

/// Where a pod finds its API-server credentials.
pub const IN_CLUSTER_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const REVIEW_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const MAX_ANSWER: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a TokenReview client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TokenReviewError {
    #[error("not in a Kubernetes pod: KUBERNETES_SERVICE_HOST is not set")]
    NotInCluster,
    #[error("invalid API server URL {0:?}")]
    Url(String),
    #[error("cannot read the API server CA {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
}

/// Checks tokens with the API server.
pub struct TokenReview {
    review_uri: Uri,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The issuer's own token for the API server; read on every call
    /// because the kubelet rotates it.
    credential: PathBuf,
    audience: String,
}

impl std::fmt::Debug for TokenReview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReview")
            .field("review_uri", &self.review_uri)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenReview {
    /// `api_server` like `https://10.0.0.1:443`, its CA bundle, the file with
    /// the issuer's own bearer token, and the audience sidecar tokens carry.
    pub fn new(
        api_server: &str,
        ca_file: &Path,
        credential: PathBuf,
        audience: &str,
    ) -> Result<Self, TokenReviewError> {
        let review_uri: Uri = format!("{}{REVIEW_PATH}", api_server.trim_end_matches('/'))
            .parse()
            .map_err(|_| TokenReviewError::Url(api_server.to_owned()))?;
        let tls = if review_uri.scheme_str() == Some("https") {
            let ca_err = |reason: String| TokenReviewError::Ca {
                path: ca_file.to_owned(),
                reason,
            };
            let anchors = CertificateDer::pem_file_iter(ca_file)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ca_err(e.to_string()))?;
            if anchors.is_empty() {
                return Err(ca_err("no certificate in the file".to_owned()));
            }
            Some(client_config(&anchors).map_err(|e| ca_err(e.to_string()))?)
        } else {
            None
        };
        Ok(Self {
            review_uri,
            tls,
            credential,
            audience: audience.to_owned(),
        })
    }

    /// The client a pod gets from its environment (`KUBERNETES_SERVICE_HOST`,
    /// `KUBERNETES_SERVICE_PORT`) and its mounted ServiceAccount.
    pub fn in_cluster(
        audience: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TokenReviewError> {
        let host = env("KUBERNETES_SERVICE_HOST").ok_or(TokenReviewError::NotInCluster)?;
        let port = env("KUBERNETES_SERVICE_PORT").unwrap_or_else(|| "443".to_owned());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let dir = Path::new(IN_CLUSTER_DIR);
        Self::new(
            &format!("https://{host}:{port}"),
            &dir.join("ca.crt"),
            dir.join("token"),
            audience,
        )
    }

    async fn review(&self, token: &str) -> Result<Workload, AuthnError> {
        let own = std::fs::read_to_string(&self.credential)
            .map_err(|e| AuthnError::Unavailable(format!("{}: {e}", self.credential.display())))?;
        let body = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": { "token": token, "audiences": [self.audience] },
        });
        let answer = https::post_json(
            &self.review_uri,
            self.tls.as_ref(),
            Some(own.trim()),
            serde_json::to_vec(&body).unwrap_or_default(),
            MAX_ANSWER,
            TIMEOUT,
        )
        .await
        .map_err(|e| AuthnError::Unavailable(e.to_string()))?;
        if !matches!(answer.status, StatusCode::OK | StatusCode::CREATED) {
            // 401/403 here are about the issuer's own credentials, not the
            // caller's token: the caller should retry, an operator fix RBAC.
            return Err(AuthnError::Unavailable(format!(
                "the API server answered {} to the TokenReview",
                answer.status
            )));
        }
        let review: Review = serde_json::from_slice(&answer.body)
            .map_err(|e| AuthnError::Unavailable(format!("unreadable TokenReview: {e}")))?;
        workload_of(review.status, &self.audience)
    }
}

impl Authenticator for TokenReview {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthnFuture<'a> {
        Box::pin(self.review(token))
    }
}

#[derive(Deserialize)]
struct Review {
    #[serde(default)]
    status: ReviewStatus,
}

#[derive(Deserialize, Default)]
struct ReviewStatus {
    #[serde(default)]
    authenticated: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    audiences: Vec<String>,
}

#[derive(Deserialize)]
struct User {
    #[serde(default)]
    username: String,
}

fn workload_of(status: ReviewStatus, audience: &str) -> Result<Workload, AuthnError> {
    if !status.authenticated {
        return Err(AuthnError::Refused(status.error.unwrap_or_else(|| {
            "the API server did not authenticate the token".to_owned()
        })));
    }
    // The API server lists the audiences the token is valid for among those
    // asked; ours missing means the token was made for someone else.
    if !status.audiences.iter().any(|a| a == audience) {
        return Err(AuthnError::Refused(format!(
            "the token is not for audience {audience:?}"
        )));
    }
    let username = status.user.map(|u| u.username).unwrap_or_default();
    let Some(rest) = username.strip_prefix("system:serviceaccount:") else {
        return Err(AuthnError::Refused(format!(
            "{username:?} is not a ServiceAccount"
        )));
    };
    match rest.split_once(':') {
        Some((ns, sa)) if !ns.is_empty() && !sa.is_empty() && !sa.contains(':') => Ok(Workload {
            namespace: ns.to_owned(),
            service_account: sa.to_owned(),
        }),
        _ => Err(AuthnError::Refused(format!(
            "{username:?} is not a ServiceAccount"
        ))),
    }
}
