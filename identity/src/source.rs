//! A workload's identity at run time: starts the credentials source the
//! `identity:` section names (a sidecar's or the gateway's) and hands back
//! the watch the mTLS listeners and connectors read on every handshake.
//!
//! With `issuer:` the key is generated in memory, the certificate requested
//! from the issuer and renewed at 70 % of its lifetime; with `files:` the
//! cert-manager files are loaded and reloaded on change. Both report
//! `weir_identity_renewals_total`, `weir_identity_renewal_failures_total`
//! and `weir_identity_certificate_expiry_timestamp_seconds`; [`state_json`]
//! is the identity part of `/state`.

use prometheus_client::registry::Registry;
use proxy_core::identity::{CredentialsWatch, credentials_channel};
use proxy_core::shutdown::Shutdown;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::client::{ClientError, RenewPolicy, run};
use crate::files::FilesError;
use crate::settings::{IdentitySettings, IdentitySource};
use crate::{FileSource, IdentityClient, IdentityMetrics, TokenSource};

/// Why the identity source could not start.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity.issuer.trust_anchor {path}: {reason}")]
    TrustAnchor {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("identity.issuer: {0}")]
    Client(#[from] ClientError),
    #[error("identity.files: {0}")]
    Files(#[from] FilesError),
}

/// Starts the source and returns its watch. With an issuer the watch holds
/// `None` until the first certificate arrives (await
/// `watch.wait_for(Option::is_some)` to hold traffic until then); with files
/// it already holds the loaded certificate, or this returns the error.
pub async fn start(
    settings: &IdentitySettings,
    registry: &mut Registry,
    shutdown: Shutdown,
) -> Result<CredentialsWatch, IdentityError> {
    let metrics = IdentityMetrics::default();
    let (tx, watch) = credentials_channel();
    match &settings.source {
        IdentitySource::Issuer {
            url,
            trust_anchor,
            token_file,
        } => {
            let anchor_err = |reason: String| IdentityError::TrustAnchor {
                path: trust_anchor.clone(),
                reason,
            };
            let anchors: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(trust_anchor)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| anchor_err(e.to_string()))?;
            if anchors.is_empty() {
                return Err(anchor_err("no certificate in the file".into()));
            }
            let client = IdentityClient::new(
                url,
                &anchors,
                TokenSource::File(token_file.clone()),
                Some(settings.id.clone()),
            )?;
            metrics.register(registry);
            tokio::spawn(run(client, RenewPolicy::default(), tx, metrics, shutdown));
        }
        IdentitySource::Files { cert, key, ca } => {
            let source = FileSource {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            };
            source.watch(tx, metrics.clone(), shutdown)?;
            metrics.register(registry);
        }
    }
    tracing::info!(spiffe_id = %settings.id, "workload identity source started");
    Ok(watch)
}

/// What `GET /state` shows about the identity: the SPIFFE ID of the
/// certificate in use and when it expires, or `null` before the first one.
pub fn state_json(watch: &CredentialsWatch) -> serde_json::Value {
    let current = watch.borrow();
    let Some(creds) = current.as_ref() else {
        return serde_json::Value::Null;
    };
    let expires_in = creds
        .not_after
        .duration_since(std::time::SystemTime::now())
        .map_or(0, |d| d.as_secs());
    serde_json::json!({
        "spiffe_id": creds.id.as_str(),
        "not_after": humantime::format_rfc3339_seconds(creds.not_after).to_string(),
        "expires_in_seconds": expires_in,
        "trust_anchors": creds.trust_anchors.len(),
    })
}
