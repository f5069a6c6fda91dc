//! A test certificate authority for mesh identities: a root, leaf
//! certificates with a SPIFFE ID as their one URI SAN, and the
//! [`Credentials`] a sidecar would get from the identity issuer, or the PEM
//! files cert-manager would write for it. (The sidecar's and the gateway's
//! tests include this file too.)

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use proxy_core::identity::{Credentials, SpiffeId};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub root: CertificateDer<'static>,
    root_pem: String,
}

/// A leaf certificate chain and its key.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} root"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let root = params.self_signed(&key).unwrap();
        TestCa {
            issuer: Issuer::new(params, key),
            root: root.der().clone(),
            root_pem: root.pem(),
        }
    }

    fn issue(&self, id: &str, valid: Option<(i32, i32)>) -> (rcgen::Certificate, KeyPair) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if let Some((from, to)) = valid {
            params.not_before = rcgen::date_time_ymd(from, 1, 1);
            params.not_after = rcgen::date_time_ymd(to, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert, key)
    }

    fn leaf_with(&self, id: &str, valid: Option<(i32, i32)>) -> Leaf {
        let (cert, key) = self.issue(id, valid);
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    /// A leaf valid now for `id` (any URI, so tests can also make bad ones).
    pub fn leaf(&self, id: &str) -> Leaf {
        self.leaf_with(id, None)
    }

    /// A leaf whose validity ended years ago.
    pub fn expired_leaf(&self, id: &str) -> Leaf {
        self.leaf_with(id, Some((2001, 2002)))
    }

    /// What cert-manager writes into a Secret volume for `id`, as PEM files
    /// in `dir`: `tls.crt` (a leaf valid now), `tls.key` and `ca.crt` (this
    /// CA's root). For a sidecar that loads its identity with `files:`.
    pub fn write_files(&self, id: &str, dir: &std::path::Path) -> std::io::Result<()> {
        let (cert, key) = self.issue(id, None);
        std::fs::write(dir.join("tls.crt"), cert.pem())?;
        std::fs::write(dir.join("tls.key"), key.serialize_pem())?;
        std::fs::write(dir.join("ca.crt"), &self.root_pem)
    }

    /// Credentials for `id` trusting this CA.
    pub fn credentials(&self, id: &str) -> Arc<Credentials> {
        self.credentials_from(id, self.leaf(id))
    }

    pub fn credentials_from(&self, id: &str, leaf: Leaf) -> Arc<Credentials> {
        Arc::new(Credentials {
            id: SpiffeId::parse(id).unwrap(),
            chain: leaf.chain,
            key: leaf.key,
            trust_anchors: vec![self.root.clone()],
            not_after: SystemTime::now() + Duration::from_secs(86_400),
        })
    }
}

/// A plain rustls client config presenting `leaf` (or nothing) and trusting
/// any server: what an attacker or a non-mesh client would use, to test what
/// the acceptor refuses.
pub fn raw_client(leaf: Option<Leaf>) -> rustls::ClientConfig {
    let b = rustls::ClientConfig::builder_with_provider(proxy_core::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer));
    match leaf {
        Some(l) => b.with_client_auth_cert(l.chain, l.key).unwrap(),
        None => b.with_no_client_auth(),
    }
}

#[derive(Debug)]
struct AnyServer;

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &proxy_core::tls::provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &proxy_core::tls::provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        proxy_core::tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
