//! The issuer service: the CA, an authenticator and the HTTPS API together.
//!
//! It serves over TLS only, with a serving certificate it signs for itself
//! at start (key in memory, DNS/IP names from [`IssuerOptions::server_names`],
//! valid as long as the issuer certificate), so a workload that trusts the
//! anchor can check it is talking to the real issuer before sending its
//! token.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use proxy_core::server::{ServeOptions, serve};
use proxy_core::shutdown::Shutdown;
use proxy_core::tls::MinTlsVersion;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

use crate::api::Api;
use crate::authn::Authenticator;
use crate::ca::{BACKDATE, Ca, CaError};
use crate::sign::DEFAULT_LIFETIME;

/// Names the issuer's serving certificate is valid for when none are given.
pub const DEFAULT_SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// How the issuer runs.
#[derive(Debug, Clone)]
pub struct IssuerOptions {
    /// Lifetime of the workload certificates it signs.
    pub lifetime: Duration,
    /// DNS names and IP addresses clients reach the issuer by, e.g.
    /// `identity.weir-system.svc`.
    pub server_names: Vec<String>,
}

impl Default for IssuerOptions {
    fn default() -> Self {
        Self {
            lifetime: DEFAULT_LIFETIME,
            server_names: DEFAULT_SERVER_NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// Why the issuer could not start.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("serving certificate: {0}")]
    ServingCert(#[from] rcgen::Error),
    #[error("TLS: {0}")]
    Tls(#[from] proxy_core::tls::TlsError),
    #[error("the workload certificate lifetime must be at least 1s")]
    Lifetime,
}

/// A ready-to-serve issuer.
pub struct Issuer {
    api: Api,
    tls: proxy_core::server::TlsSource,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("ca", self.api.ca())
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer for `ca` that gives identities as `authn` decides.
    pub fn new(
        ca: Ca,
        authn: Arc<dyn Authenticator>,
        opts: &IssuerOptions,
    ) -> Result<Issuer, IssuerError> {
        if opts.lifetime < Duration::from_secs(1) {
            return Err(IssuerError::Lifetime);
        }
        let serving = serving_key(&ca, &opts.server_names)?;
        let tls = proxy_core::tls::server_config(vec![serving], MinTlsVersion::Tls12)?;
        Ok(Issuer {
            api: Api::new(ca, authn, opts.lifetime),
            tls: Arc::new(ArcSwap::from_pointee(tls)),
        })
    }

    /// The issuer of the CA in `dir`, created there first when the directory
    /// holds none (the demo's first start).
    pub fn load_or_init(
        dir: &Path,
        trust_domain: &str,
        authn: Arc<dyn Authenticator>,
        opts: &IssuerOptions,
    ) -> Result<Issuer, IssuerError> {
        Issuer::new(Ca::load_or_init(dir, trust_domain)?, authn, opts)
    }

    pub fn ca(&self) -> &Ca {
        self.api.ca()
    }

    /// Serves the API on `listener` until `shutdown`.
    pub async fn serve(self, listener: TcpListener, shutdown: Shutdown) {
        let opts = ServeOptions {
            tls: Some(self.tls),
            drain: Duration::from_secs(5),
            ..ServeOptions::default()
        };
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, trust_domain = self.api.ca().trust_domain(), "identity issuer listening");
        }
        serve(listener, opts, self.api, shutdown).await;
    }
}

/// A serving certificate for the issuer itself, signed by the issuer key.
fn serving_key(ca: &Ca, names: &[String]) -> Result<rustls::sign::CertifiedKey, IssuerError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Weir identity issuer");
    params.distinguished_name = dn;
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = ca.issuer_not_after().into();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, ca.signer())?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = proxy_core::tls::provider()
        .key_provider
        .load_private_key(der)
        .map_err(proxy_core::tls::TlsError::Config)?;
    Ok(rustls::sign::CertifiedKey::new(
        vec![cert.der().clone(), ca.issuer_cert().clone()],
        signing,
    ))
}
