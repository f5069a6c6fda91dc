//! The workload side: obtain a certificate from the issuer and keep it fresh.
//!
//! Each request generates a new ECDSA P-256 key in memory (it never touches
//! disk), sends a CSR for it with the workload's bearer token over HTTPS
//! (the issuer must prove itself with a certificate that leads to the
//! configured trust anchor), checks the answer (see `svid.rs`) and
//! publishes the new [`Credentials`].
//!
//! Rotation: the next request is planned at 70 % of the certificate's
//! remaining lifetime as seen on arrival. Publishing swaps a value in a
//! watch channel; handshakes read the latest value, so connections already
//! open keep going and new ones use the new certificate: nothing is dropped.
//! A failed request keeps the current certificate published and retries
//! with a capped exponential backoff until the issuer answers again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{StatusCode, Uri};
use proxy_core::identity::{Credentials, CredentialsSender, SpiffeId};
use proxy_core::shutdown::Shutdown;
use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::api::{CERTIFICATES_PATH, CertificateRequest, CertificateResponse};
use crate::https::{self, HttpsError};
use crate::metrics::IdentityMetrics;
use crate::svid::{self, SvidError};

const MAX_ANSWER: usize = 256 * 1024;

/// Where the bearer token comes from.
#[derive(Clone)]
pub enum TokenSource {
    /// Read before every request (a projected ServiceAccount token is
    /// rotated by the kubelet).
    File(PathBuf),
    /// A fixed token (a bootstrap token handed over in process).
    Value(String),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::File(p) => f.debug_tuple("File").field(p).finish(),
            TokenSource::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

/// When to renew and how to retry.
#[derive(Debug, Clone, Copy)]
pub struct RenewPolicy {
    /// Renew after this fraction of the remaining lifetime.
    pub renew_at: f64,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Bound on one request to the issuer.
    pub timeout: Duration,
}

impl Default for RenewPolicy {
    fn default() -> Self {
        Self {
            renew_at: 0.7,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid issuer URL {0:?}: use https://host:port")]
    Url(String),
    #[error("no trust anchor to check the issuer with")]
    NoAnchors,
    #[error("trust anchor: {0}")]
    Anchor(#[from] rustls::Error),
}

/// Why one certificate request failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot read the token {path}: {source}")]
    Token {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make a key or CSR: {0}")]
    Csr(#[from] rcgen::Error),
    #[error(transparent)]
    Https(#[from] HttpsError),
    #[error("the issuer refused ({status}): {detail}")]
    Refused { status: StatusCode, detail: String },
    #[error("unreadable issuer answer: {0}")]
    Answer(String),
    #[error("the issued certificate is not usable: {0}")]
    Svid(#[from] SvidError),
}

/// Asks an issuer for certificates.
#[derive(Debug, Clone)]
pub struct IdentityClient {
    uri: Uri,
    tls: Arc<rustls::ClientConfig>,
    token: TokenSource,
    expected: Option<SpiffeId>,
    timeout: Duration,
}

impl IdentityClient {
    /// `issuer_url` like `https://identity.weir-system.svc:8443`; `anchors`
    /// are trusted for the issuer's serving certificate; with `expected`,
    /// an issued certificate for any other ID is refused.
    pub fn new(
        issuer_url: &str,
        anchors: &[CertificateDer<'static>],
        token: TokenSource,
        expected: Option<SpiffeId>,
    ) -> Result<Self, ClientError> {
        let base: Uri = issuer_url
            .parse()
            .map_err(|_| ClientError::Url(issuer_url.to_owned()))?;
        if base.scheme_str() != Some("https") || base.host().is_none() {
            return Err(ClientError::Url(issuer_url.to_owned()));
        }
        let uri = format!("{}{CERTIFICATES_PATH}", issuer_url.trim_end_matches('/'))
            .parse()
            .map_err(|_| ClientError::Url(issuer_url.to_owned()))?;
        if anchors.is_empty() {
            return Err(ClientError::NoAnchors);
        }
        Ok(Self {
            uri,
            tls: https::client_config(anchors)?,
            token,
            expected,
            timeout: RenewPolicy::default().timeout,
        })
    }

    /// Bounds each request (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// One certificate request: new key, CSR, issuer call, checks.
    pub async fn fetch(&self) -> Result<Credentials, FetchError> {
        let token = match &self.token {
            TokenSource::Value(v) => v.clone(),
            TokenSource::File(path) => std::fs::read_to_string(path)
                .map_err(|source| FetchError::Token {
                    path: path.clone(),
                    source,
                })?
                .trim()
                .to_owned(),
        };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        // Informational: the issuer decides the ID from the token.
        if let Some(id) = &self.expected {
            params.subject_alt_names = vec![SanType::URI(id.as_str().try_into()?)];
        }
        let csr = params.serialize_request(&key)?.pem()?;
        let body = serde_json::to_vec(&CertificateRequest { csr }).unwrap_or_default();
        let answer = https::post_json(
            &self.uri,
            Some(&self.tls),
            Some(&token),
            body,
            MAX_ANSWER,
            self.timeout,
        )
        .await?;
        if answer.status != StatusCode::OK {
            let detail = serde_json::from_slice::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|v| {
                    let t = v.get("type")?.as_str()?.to_owned();
                    let d = v.get("detail").and_then(|d| d.as_str()).unwrap_or("");
                    Some(format!("{t}: {d}"))
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).into_owned());
            return Err(FetchError::Refused {
                status: answer.status,
                detail,
            });
        }
        let resp: CertificateResponse =
            serde_json::from_slice(&answer.body).map_err(|e| FetchError::Answer(e.to_string()))?;
        let chain = pem_certs(&resp.chain)?;
        let anchors = pem_certs(&resp.trust_anchors)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok(svid::check(chain, key, anchors, self.expected.as_ref())?)
    }
}

fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, FetchError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FetchError::Answer(e.to_string()))
}

/// How long to wait before renewing a certificate valid until `not_after`,
/// seen at `now`.
pub fn renew_after(now: SystemTime, not_after: SystemTime, renew_at: f64) -> Duration {
    not_after
        .duration_since(now)
        .unwrap_or_default()
        .mul_f64(renew_at.clamp(0.0, 1.0))
}

/// Obtains and renews certificates until `shutdown`, publishing each one.
pub async fn run(
    client: IdentityClient,
    policy: RenewPolicy,
    tx: CredentialsSender,
    metrics: IdentityMetrics,
    shutdown: Shutdown,
) {
    let client = client.with_timeout(policy.timeout);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut backoff = policy.min_backoff;
    loop {
        let wait = tokio::select! {
            r = client.fetch() => match r {
                Ok(creds) => {
                    // Never sooner than the shortest backoff: a certificate
                    // cut short (the issuer's own expires soon) must not
                    // make the client hammer the issuer.
                    let wait = renew_after(SystemTime::now(), creds.not_after, policy.renew_at)
                        .max(policy.min_backoff);
                    tracing::info!(
                        spiffe_id = %creds.id,
                        not_after = %humantime::format_rfc3339_seconds(creds.not_after),
                        renew_in = ?wait,
                        "workload certificate obtained"
                    );
                    metrics.published(creds.not_after);
                    tx.send_replace(Some(Arc::new(creds)));
                    backoff = policy.min_backoff;
                    wait
                }
                Err(e) => {
                    metrics.failures.inc();
                    let current = tx.borrow().as_ref().map(|c| c.not_after);
                    match current {
                        Some(exp) if exp > SystemTime::now() => tracing::warn!(
                            error = %e, retry_in = ?backoff,
                            expires = %humantime::format_rfc3339_seconds(exp),
                            "certificate request failed; the current certificate stays in use"
                        ),
                        Some(_) => tracing::error!(
                            error = %e, retry_in = ?backoff,
                            "certificate request failed and the current certificate has expired"
                        ),
                        None => tracing::warn!(
                            error = %e, retry_in = ?backoff,
                            "certificate request failed; no certificate yet"
                        ),
                    }
                    let wait = backoff;
                    backoff = (backoff * 2).min(policy.max_backoff);
                    wait
                }
            },
            _ = &mut stop => return,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut stop => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_at_seventy_percent_of_what_is_left() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let after = renew_after(now, now + Duration::from_secs(100), 0.7);
        assert_eq!(after, Duration::from_secs(70));
        assert_eq!(
            renew_after(now, now - Duration::from_secs(1), 0.7),
            Duration::ZERO
        );
    }

    #[test]
    fn refuses_plain_http_issuers_and_missing_anchors() {
        let token = TokenSource::Value("t".into());
        assert!(matches!(
            IdentityClient::new("http://localhost:1", &[], token.clone(), None),
            Err(ClientError::Url(_))
        ));
        assert!(matches!(
            IdentityClient::new("https://localhost:1", &[], token, None),
            Err(ClientError::NoAnchors)
        ));
    }
}
