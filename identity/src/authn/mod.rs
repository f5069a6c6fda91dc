//! Who is calling: turning the bearer token of a certificate request into the
//! workload (namespace and service account) whose identity it may receive.
//!
//! The issuer decides identity from this answer alone, never from what the
//! CSR asks for. Two ways to decide:
//!
//! - [`BootstrapTokens`]: one secret token per service, from a file (local
//!   runs and the demo);
//! - [`TokenReview`]: in Kubernetes, the pod's projected ServiceAccount token,
//!   checked by the API server (`TokenReview`), with an audience that only
//!   the issuer accepts.

mod bootstrap;
mod tokenreview;

use std::future::Future;
use std::pin::Pin;

pub use bootstrap::{BootstrapTokens, MIN_TOKEN_LEN, TokensError, generate_token};
pub use tokenreview::{IN_CLUSTER_DIR, TokenReview, TokenReviewError};

/// The workload a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub namespace: String,
    pub service_account: String,
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// The token is unknown, expired or for another audience: `401`.
    #[error("token refused: {0}")]
    Refused(String),
    /// The authority that checks tokens could not be asked: `503`, retry.
    #[error("cannot check the token now: {0}")]
    Unavailable(String),
}

/// The boxed future an [`Authenticator`] returns (boxed so the issuer can
/// hold any authenticator behind `dyn`).
pub type AuthnFuture<'a> = Pin<Box<dyn Future<Output = Result<Workload, AuthnError>> + Send + 'a>>;

/// Decides which workload presents `token`.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthnFuture<'a>;
}
