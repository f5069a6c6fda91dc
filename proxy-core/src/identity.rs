//! Workload identity: the SPIFFE ID a sidecar proves with its certificate, and
//! the credentials (certificate chain, key, trust anchors) that prove it.
//!
//! Two sides meet here. Whatever obtains certificates (the identity client that
//! asks an issuer, or a watcher of files written by cert-manager) publishes
//! [`Credentials`] through a [`CredentialsSender`]. Whatever uses them (the
//! mTLS acceptor and connector) reads the latest value from a
//! [`CredentialsWatch`] on each handshake, so a rotation takes effect for the
//! next connection without touching the ones already open.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A SPIFFE ID, `spiffe://<trust-domain>/<path>`, checked for shape.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId(Arc<str>);

/// Why a string is not a SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    #[error("a SPIFFE ID starts with spiffe://")]
    Scheme,
    #[error("the trust domain is empty or has characters other than a-z, 0-9, '.', '-' and '_'")]
    TrustDomain,
    #[error(
        "the path is empty, has an empty, '.' or '..' segment, or characters other than a-z, A-Z, 0-9, '.', '-' and '_'"
    )]
    Path,
}

impl SpiffeId {
    /// Parses and checks a SPIFFE ID as the SPIFFE standard defines it: a lower-case
    /// trust domain and a non-empty path of plain segments, no query or fragment.
    pub fn parse(s: &str) -> Result<Self, SpiffeIdError> {
        let rest = s.strip_prefix("spiffe://").ok_or(SpiffeIdError::Scheme)?;
        let (domain, path) = rest.split_once('/').ok_or(SpiffeIdError::Path)?;
        let domain_ok = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !domain_ok {
            return Err(SpiffeIdError::TrustDomain);
        }
        let path_ok = path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
        if !path_ok {
            return Err(SpiffeIdError::Path);
        }
        Ok(Self(Arc::from(s)))
    }

    /// The identity Weir gives a workload: `spiffe://<td>/ns/<namespace>/sa/<account>`.
    pub fn for_workload(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, SpiffeIdError> {
        Self::parse(&format!(
            "spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"
        ))
    }

    /// The trust domain, e.g. `weir.local`.
    pub fn trust_domain(&self) -> &str {
        let rest = &self.0["spiffe://".len()..];
        rest.split_once('/').map_or(rest, |(d, _)| d)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.0)
    }
}

impl std::str::FromStr for SpiffeId {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// What a workload proves itself with: its leaf certificate (first) and any
/// intermediates, the private key for the leaf, and the trust anchors it
/// accepts peers from.
pub struct Credentials {
    /// The identity in the leaf certificate's URI SAN.
    pub id: SpiffeId,
    /// Leaf first, then the issuer's certificate(s), not the anchor.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key. Held in memory only; never written to disk by Weir.
    pub key: PrivateKeyDer<'static>,
    /// The roots peers' chains must lead to.
    pub trust_anchors: Vec<CertificateDer<'static>>,
    /// When the leaf expires; renewal is planned from it.
    pub not_after: SystemTime,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("id", &self.id)
            .field("chain_len", &self.chain.len())
            .field("trust_anchors", &self.trust_anchors.len())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The latest credentials, or `None` before the first certificate arrives.
pub type CredentialsWatch = tokio::sync::watch::Receiver<Option<Arc<Credentials>>>;
/// Publishes each new certificate (first issue and every rotation).
pub type CredentialsSender = tokio::sync::watch::Sender<Option<Arc<Credentials>>>;

/// A channel for credentials, empty until the first certificate.
pub fn credentials_channel() -> (CredentialsSender, CredentialsWatch) {
    tokio::sync::watch::channel(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_workload_ids_and_names_the_trust_domain() {
        let id = SpiffeId::for_workload("weir.local", "default", "payment").unwrap();
        assert_eq!(id.as_str(), "spiffe://weir.local/ns/default/sa/payment");
        assert_eq!(id.trust_domain(), "weir.local");
    }

    #[test]
    fn refuses_malformed_ids() {
        for bad in [
            "http://weir.local/ns/a",
            "spiffe://",
            "spiffe://weir.local",
            "spiffe://weir.local/",
            "spiffe://Weir.Local/ns/a",
            "spiffe://weir.local/ns//a",
            "spiffe://weir.local/ns/../a",
            "spiffe://weir.local/ns/a?x=1",
            "spiffe://weir.local/ns/a#f",
            "spiffe://user@weir.local/ns/a",
            "spiffe://weir.local:8443/ns/a",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
