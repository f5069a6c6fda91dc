//! Checking a workload certificate (an X.509-SVID) before it is published:
//! whatever the source, a sidecar serves only a chain that leads to its
//! trust anchors, names exactly one SPIFFE ID, and matches its key.
//!
//! The issuer's answer and files written by cert-manager both go through
//! [`check`], so a misissued certificate or a half-written file fails here,
//! with a reason, instead of in every peer's handshake.

use std::time::SystemTime;

use proxy_core::identity::{Credentials, SpiffeId};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::ca::unix_to_system;

/// Why a chain is not usable as a workload identity.
#[derive(Debug, thiserror::Error)]
pub enum SvidError {
    #[error("the chain is empty")]
    Empty,
    #[error("the leaf certificate cannot be parsed: {0}")]
    Parse(String),
    #[error(
        "the leaf certificate has {0} URI SANs; a workload certificate has exactly one SPIFFE ID"
    )]
    UriSans(usize),
    #[error("the leaf's URI SAN {0:?} is not a SPIFFE ID")]
    NotSpiffe(String),
    #[error("the certificate is for {found}, expected {expected}")]
    WrongId { found: SpiffeId, expected: SpiffeId },
    #[error("no trust anchors")]
    NoAnchors,
    #[error("the chain does not lead to a trust anchor: {0}")]
    Untrusted(String),
    #[error("the private key does not match the certificate: {0}")]
    KeyMismatch(String),
}

/// Checks `chain` (leaf first) against `anchors` and `key`, and builds the
/// credentials. With `expected`, the leaf must carry that ID.
pub fn check(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    anchors: Vec<CertificateDer<'static>>,
    expected: Option<&SpiffeId>,
) -> Result<Credentials, SvidError> {
    let leaf = chain.first().ok_or(SvidError::Empty)?;
    let (id, not_after) = identity_of(leaf)?;
    if let Some(expected) = expected
        && *expected != id
    {
        return Err(SvidError::WrongId {
            found: id,
            expected: expected.clone(),
        });
    }
    verify_chain(&chain, &anchors)?;
    key_matches(leaf, &key)?;
    Ok(Credentials {
        id,
        chain,
        key,
        trust_anchors: anchors,
        not_after,
    })
}

/// The SPIFFE ID in the leaf's URI SAN and the leaf's expiry.
pub fn identity_of(leaf: &CertificateDer<'_>) -> Result<(SpiffeId, SystemTime), SvidError> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| SvidError::Parse(e.to_string()))?;
    let uris: Vec<&str> = cert
        .subject_alternative_name()
        .map_err(|e| SvidError::Parse(e.to_string()))?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some(*u),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let [uri] = uris.as_slice() else {
        return Err(SvidError::UriSans(uris.len()));
    };
    let id = SpiffeId::parse(uri).map_err(|_| SvidError::NotSpiffe((*uri).to_owned()))?;
    Ok((id, unix_to_system(cert.validity().not_after.timestamp())))
}

fn verify_chain(
    chain: &[CertificateDer<'static>],
    anchors: &[CertificateDer<'static>],
) -> Result<(), SvidError> {
    if anchors.is_empty() {
        return Err(SvidError::NoAnchors);
    }
    let untrusted = |e: webpki::Error| SvidError::Untrusted(format!("{e:?}"));
    let roots = anchors
        .iter()
        .map(|a| webpki::anchor_from_trusted_cert(a).map(|t| t.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(untrusted)?;
    let ee = webpki::EndEntityCert::try_from(&chain[0]).map_err(untrusted)?;
    let provider = proxy_core::tls::provider();
    ee.verify_for_usage(
        provider.signature_verification_algorithms.all,
        &roots,
        &chain[1..],
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(untrusted)?;
    Ok(())
}

fn key_matches(
    leaf: &CertificateDer<'static>,
    key: &PrivateKeyDer<'static>,
) -> Result<(), SvidError> {
    let signing = proxy_core::tls::provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| SvidError::KeyMismatch(e.to_string()))?;
    rustls::sign::CertifiedKey::new(vec![leaf.clone()], signing)
        .keys_match()
        .map_err(|e| SvidError::KeyMismatch(e.to_string()))
}
