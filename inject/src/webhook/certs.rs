//! The webhook's serving certificate, re-read when its files change.
//!
//! Kubernetes updates a mounted Secret in place (an atomic symlink swap), so
//! a certificate renewed by `webhook-certs.sh` or cert-manager reaches the pod
//! without a restart. [`CertificateFiles`] checks the files' modification
//! times and sizes, and new handshakes get the new certificate; a broken
//! renewal (unreadable file, key that does not match) is logged and the
//! previous certificate keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::WebhookError;

/// What identifies one version of the files on disk.
type Stamp = [(Option<SystemTime>, u64); 2];

/// A certificate chain and key loaded from PEM files, reloadable.
#[derive(Debug)]
pub struct CertificateFiles {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: Mutex<Stamp>,
}

impl CertificateFiles {
    /// Loads both files; fails if either is unreadable or they do not match.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, WebhookError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamp = stamp(cert, key);
        let certified = read_certified_key(cert, key, &provider)?;
        Ok(Arc::new(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new(Arc::new(certified)),
            stamp: Mutex::new(stamp),
        }))
    }

    /// A rustls server config (ring provider, TLS 1.2 and 1.3, h2 and
    /// http/1.1) that always presents the current certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, WebhookError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(WebhookError::Tls)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Re-reads the files if they changed since the last load. `Ok(true)`:
    /// new handshakes now get the new certificate.
    pub fn reload_if_changed(&self) -> Result<bool, WebhookError> {
        let now = stamp(&self.cert, &self.key);
        {
            let last = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
            if *last == now {
                return Ok(false);
            }
        }
        let certified = read_certified_key(&self.cert, &self.key, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = now;
        Ok(true)
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| match std::fs::metadata(p) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    };
    [one(cert), one(key)]
}

fn read_certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, WebhookError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| WebhookError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .ok()
        .filter(|c: &Vec<_>| !c.is_empty())
        .ok_or_else(|| WebhookError::Pem {
            what: "certificate",
            path: cert.to_owned(),
        })?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| WebhookError::Pem {
        what: "private key",
        path: key.to_owned(),
    })?;
    CertifiedKey::from_der(chain, key_der, provider).map_err(WebhookError::Tls)
}
