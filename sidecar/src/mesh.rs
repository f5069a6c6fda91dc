//! The sidecar's workload identity, when it has one: the credentials every
//! mutual TLS handshake (inbound and outbound) reads, and the defaults that
//! depend on having them.

use proxy_core::config::Protocol;
use proxy_core::forward::UpstreamTls;
use proxy_core::identity::{CredentialsWatch, credentials_channel};
use proxy_core::mtls::{CredentialSource, ExpectedPeer};

use crate::config::mesh::{OutboundTlsMode, ServiceTls};

#[derive(Clone, Debug)]
pub(crate) struct Mesh {
    source: CredentialSource,
    meshed: bool,
}

impl Mesh {
    /// With `watch`, the sidecar is in the mesh (whether or not the first
    /// certificate has arrived yet); without, it has no identity.
    pub(crate) fn new(watch: Option<CredentialsWatch>) -> Self {
        let meshed = watch.is_some();
        // Without credentials an empty watch stands in, so a destination
        // set to `mtls` explicitly fails its connects (no certificate)
        // instead of falling back to plaintext.
        let watch = watch.unwrap_or_else(|| credentials_channel().1);
        Self {
            source: CredentialSource::new(watch),
            meshed,
        }
    }

    /// `/state`'s `identity`: who this sidecar is now, until when, and how
    /// many versions of its credentials handshakes have used (one more after
    /// each rotation, once a handshake has run with it).
    pub(crate) fn state_json(&self) -> serde_json::Value {
        if !self.meshed {
            return serde_json::Value::Null;
        }
        let (id, not_after) = match self.source.current_credentials() {
            Some(c) => (
                Some(c.id.to_string()),
                c.not_after
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs()),
            ),
            None => (None, None),
        };
        serde_json::json!({
            "id": id,
            "not_after_unix": not_after,
            "versions_used": self.source.versions_used(),
        })
    }

    pub(crate) fn meshed(&self) -> bool {
        self.meshed
    }

    pub(crate) fn source(&self) -> &CredentialSource {
        &self.source
    }

    /// Whether `tls` (a destination's section) means mutual TLS.
    pub(crate) fn is_mtls(&self, tls: &ServiceTls) -> bool {
        match tls.mode {
            Some(m) => m == OutboundTlsMode::Mtls,
            None => self.meshed,
        }
    }

    /// The TLS of a destination's connections, `None` for plaintext.
    pub(crate) fn upstream_tls(&self, tls: &ServiceTls, protocol: Protocol) -> Option<UpstreamTls> {
        if !self.is_mtls(tls) {
            return None;
        }
        let expected = tls
            .identity
            .clone()
            .map_or(ExpectedPeer::TrustDomain, ExpectedPeer::Id);
        Some(UpstreamTls::new(self.source.clone(), expected, protocol))
    }
}
