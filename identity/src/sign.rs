//! Signing a workload's certificate signing request.
//!
//! The CSR contributes exactly one thing: its public key, after its
//! self-signature proves the caller holds the matching private key. The
//! subject, SANs and extensions it asks for are ignored; the certificate
//! carries the SPIFFE ID the caller's credential was authorized for and
//! nothing else, so a token for `order` can never obtain `payment`'s identity
//! by asking for it.

use std::time::{Duration, SystemTime};

use proxy_core::identity::SpiffeId;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, ExtendedKeyUsagePurpose,
    IsCa, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;

use crate::ca::{BACKDATE, Ca};

/// Default lifetime of a workload certificate.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A signed workload certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    pub id: SpiffeId,
    /// Leaf, then the issuer certificate.
    pub chain: Vec<CertificateDer<'static>>,
    /// The same chain as PEM.
    pub chain_pem: String,
    pub not_after: SystemTime,
}

/// Why a CSR was not signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// Not a CSR, or its signature does not match its key.
    #[error("invalid certificate signing request: {0}")]
    BadCsr(rcgen::Error),
    #[error("signing failed: {0}")]
    Sign(rcgen::Error),
    #[error("the issuer certificate has expired")]
    IssuerExpired,
}

/// Signs `csr_pem` for `id`, valid from a little before `now` for
/// `lifetime` (cut short at the issuer's own expiry).
pub fn sign_csr(
    ca: &Ca,
    csr_pem: &str,
    id: &SpiffeId,
    lifetime: Duration,
    now: SystemTime,
) -> Result<Issued, SignError> {
    // `from_pem` checks the CSR's self-signature (proof of possession).
    let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(SignError::BadCsr)?;
    let not_after = (now + lifetime).min(ca.issuer_not_after());
    if not_after <= now {
        return Err(SignError::IssuerExpired);
    }
    let mut params = CertificateParams::default();
    // SPIFFE X.509-SVIDs identify by the URI SAN alone; an empty subject
    // makes rcgen mark the SAN critical, as RFC 5280 requires.
    params.distinguished_name = DistinguishedName::new();
    let uri = id.as_str().try_into().map_err(SignError::Sign)?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    params.not_before = (now - BACKDATE).into();
    params.not_after = not_after.into();
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::ExplicitNoCa;
    // ECDSA keys only sign (TLS 1.3 and ECDHE suites): no key encipherment.
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&csr.public_key, ca.signer())
        .map_err(SignError::Sign)?;
    let chain = vec![cert.der().clone(), ca.issuer_cert().clone()];
    let chain_pem = format!("{}{}", cert.pem(), ca.issuer_pem());
    Ok(Issued {
        id: id.clone(),
        chain,
        chain_pem,
        not_after,
    })
}

/// A random positive 128-bit serial (RFC 5280 allows up to 20 octets).
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    // ring's system RNG; failure means no entropy source at all, and a
    // predictable serial is still unique per key, so fall back to the time.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = nanos.to_be_bytes();
    }
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};

    fn ca() -> (std::path::PathBuf, Ca) {
        let dir = std::env::temp_dir().join(format!(
            "weir-sign-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let ca = Ca::init(&dir, "weir.local").unwrap();
        (dir, ca)
    }

    #[test]
    fn sets_only_the_authorized_id_whatever_the_csr_asks() {
        let (dir, ca) = ca();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut req = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
        req.subject_alt_names.push(SanType::URI(
            "spiffe://weir.local/ns/default/sa/payment"
                .try_into()
                .unwrap(),
        ));
        req.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let csr = req.serialize_request(&key).unwrap().pem().unwrap();
        let id = SpiffeId::for_workload("weir.local", "default", "order").unwrap();
        let now = SystemTime::now();
        let issued = sign_csr(&ca, &csr, &id, DEFAULT_LIFETIME, now).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&issued.chain[0]).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, vec![format!("URI({id})")]);
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(!bc.value.ca);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(cert.validity().not_before.timestamp() < cert.validity().not_after.timestamp());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn refuses_a_csr_whose_signature_does_not_match() {
        let (dir, ca) = ca();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        let mut der = csr.der().to_vec();
        // Flip a bit of the signature (the last bytes of the DER).
        let last = der.len() - 2;
        der[last] ^= 0x01;
        let pem = pem_of("CERTIFICATE REQUEST", &der);
        let id = SpiffeId::for_workload("weir.local", "default", "order").unwrap();
        let err = sign_csr(&ca, &pem, &id, DEFAULT_LIFETIME, SystemTime::now()).unwrap_err();
        assert!(matches!(err, SignError::BadCsr(_)), "{err}");
        assert!(matches!(
            sign_csr(&ca, "not a csr", &id, DEFAULT_LIFETIME, SystemTime::now()),
            Err(SignError::BadCsr(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn pem_of(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }
}
