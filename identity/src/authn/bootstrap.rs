//! Bootstrap tokens: one secret per service, for running without Kubernetes.
//!
//! The tokens file is YAML, `service: token` (namespace `default`) or
//! `namespace/service: token`:
//!
//! ```yaml
//! catalog: 6f1c0b9d2e4a...   # 32+ characters
//! shop/order: 90aa17c4b3...
//! ```
//!
//! Tokens are compared by their SHA-256 digest with a constant-time compare
//! against every entry, so neither the time to answer nor an early exit tells
//! a caller how much of a token was right.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Authenticator, AuthnError, AuthnFuture, Workload};

/// The shortest token accepted: 128 bits written as hex.
pub const MIN_TOKEN_LEN: usize = 32;

/// Why a tokens file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Tokens by workload, held as digests.
pub struct BootstrapTokens {
    entries: Vec<(Workload, [u8; 32])>,
}

impl std::fmt::Debug for BootstrapTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapTokens")
            .field("workloads", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl BootstrapTokens {
    /// Reads a tokens file.
    pub fn load(path: &Path) -> Result<Self, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Io {
            path: path.to_owned(),
            source,
        })?;
        let map: std::collections::BTreeMap<String, String> = serde_norway::from_str(&text)
            .map_err(|e| TokensError::Invalid {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        Self::from_pairs(map).map_err(|reason| TokensError::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    /// Tokens from `(service or namespace/service, token)` pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (name, token) in pairs {
            let (namespace, service) = name.split_once('/').unwrap_or(("default", &name));
            let ok = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
            };
            if !ok(namespace) || !ok(service) {
                return Err(format!("{name}: not a [namespace/]service name"));
            }
            if token.trim().len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "{name}: the token is shorter than {MIN_TOKEN_LEN} characters"
                ));
            }
            entries.push((
                Workload {
                    namespace: namespace.to_owned(),
                    service_account: service.to_owned(),
                },
                Sha256::digest(token.trim().as_bytes()).into(),
            ));
        }
        Ok(Self { entries })
    }

    fn check(&self, token: &str) -> Option<Workload> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (workload, want) in &self.entries {
            if bool::from(want.ct_eq(&digest)) {
                found = Some(workload.clone());
            }
        }
        found
    }
}

impl Authenticator for BootstrapTokens {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthnFuture<'a> {
        let result = self
            .check(token)
            .ok_or_else(|| AuthnError::Refused("unknown bootstrap token".to_owned()));
        Box::pin(std::future::ready(result))
    }
}

/// A new random token (256 bits, hex).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system random number generator failed");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn maps_tokens_to_their_workload_only() {
        let a = generate_token();
        let b = generate_token();
        let tokens = BootstrapTokens::from_pairs([
            ("catalog".to_owned(), a.clone()),
            ("shop/order".to_owned(), b.clone()),
        ])
        .unwrap();
        let w = tokens.authenticate(&a).await.unwrap();
        assert_eq!(
            (w.namespace.as_str(), w.service_account.as_str()),
            ("default", "catalog")
        );
        let w = tokens.authenticate(&b).await.unwrap();
        assert_eq!(
            (w.namespace.as_str(), w.service_account.as_str()),
            ("shop", "order")
        );
        assert!(matches!(
            tokens.authenticate(&a[..a.len() - 1]).await,
            Err(AuthnError::Refused(_))
        ));
        assert!(tokens.authenticate("").await.is_err());
    }

    #[test]
    fn refuses_short_tokens_and_bad_names() {
        assert!(BootstrapTokens::from_pairs([("a".to_owned(), "short".to_owned())]).is_err());
        assert!(BootstrapTokens::from_pairs([("Bad Name".to_owned(), generate_token())]).is_err());
    }
}
