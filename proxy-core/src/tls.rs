//! TLS termination with rustls: certificates loaded from PEM files and chosen
//! per connection by SNI, TLS 1.2+ only, ALPN `h2` and `http/1.1`.
//!
//! The listener code takes a [`rustls::ServerConfig`] as a parameter rather
//! than assuming plaintext, which leaves room for sidecar-to-sidecar mTLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate {path}: {source}")]
    Cert {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("certificate file {0} holds no certificate")]
    NoCert(PathBuf),
    #[error("cannot read private key {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("private key {path} is not usable: {source}")]
    BadKey {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The one crypto provider of the process (ring), passed explicitly so two
/// providers in the dependency tree can never make rustls panic.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The provider for mesh hops (both ends are Weir): the same algorithms,
/// with AES-128-GCM preferred over AES-256-GCM. Every request on a reused
/// connection pays record encryption on both ends; AES-128 runs 10 rounds
/// where AES-256 runs 14, and 128-bit keys are what TLS 1.3 mandates and
/// Linkerd and Istio use between proxies. The other suites stay, so a peer
/// that lacks it (an `openssl s_client` check, say) still connects.
pub fn mesh_provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
}

/// Loads a certificate chain and its private key from PEM files.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Cert {
            path: cert.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(cert.to_owned()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
        path: key.to_owned(),
        source,
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|source| TlsError::BadKey {
            path: key.to_owned(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing);
    // A certificate and key from different pairs would fail every handshake;
    // refuse them here, where the error can name the files.
    certified.keys_match().map_err(|source| TlsError::BadKey {
        path: key.to_owned(),
        source,
    })?;
    Ok(certified)
}

/// Minimum TLS version accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum MinTlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// A server config that picks among `certs` by SNI (first certificate valid for
/// the requested name; the first certificate when the client sent no name or
/// none matches) and offers ALPN `h2` then `http/1.1`.
pub fn server_config(
    certs: Vec<CertifiedKey>,
    min: MinTlsVersion,
) -> Result<rustls::ServerConfig, TlsError> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min {
        MinTlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinTlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver {
            certs: certs.into_iter().map(Arc::new).collect(),
        }));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

#[derive(Debug)]
struct SniResolver {
    certs: Vec<Arc<CertifiedKey>>,
}

impl SniResolver {
    fn matches(cert: &CertifiedKey, name: &ServerName<'_>) -> bool {
        let Some(leaf) = cert.cert.first() else {
            return false;
        };
        webpki::EndEntityCert::try_from(leaf)
            .and_then(|ee| ee.verify_is_valid_for_subject_name(name))
            .is_ok()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let by_name = hello.server_name().and_then(|sni| {
            let name = ServerName::try_from(sni).ok()?;
            self.certs.iter().find(|c| Self::matches(c, &name)).cloned()
        });
        by_name.or_else(|| self.certs.first().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_selects_by_sni() {
        let dir = std::env::temp_dir().join(format!("weir-tls-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let mut keys = Vec::new();
        for name in ["a.example.com", "b.example.com"] {
            let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
            let cert = dir.join(format!("{name}.crt"));
            let key = dir.join(format!("{name}.key"));
            std::fs::write(&cert, ck.cert.pem()).unwrap();
            std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
            keys.push(load_certified_key(&cert, &key).unwrap());
        }
        let b_leaf = keys[1].cert[0].clone();
        let resolver = SniResolver {
            certs: keys.into_iter().map(Arc::new).collect(),
        };
        let b = ServerName::try_from("b.example.com").unwrap();
        let found = resolver
            .certs
            .iter()
            .find(|c| SniResolver::matches(c, &b))
            .unwrap();
        assert_eq!(found.cert[0], b_leaf);
        assert!(load_certified_key(&dir.join("missing.crt"), &dir.join("missing.key")).is_err());
        let mismatched = load_certified_key(
            &dir.join("a.example.com.crt"),
            &dir.join("b.example.com.key"),
        );
        assert!(
            matches!(mismatched, Err(TlsError::BadKey { .. })),
            "{mismatched:?}"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
