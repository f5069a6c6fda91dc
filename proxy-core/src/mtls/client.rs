//! The connector's side: verify the server is the workload expected for the
//! destination, and present the workload's own certificate.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::chain;
use super::source::CredentialSource;
use crate::identity::SpiffeId;

/// Which server identity a connection accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectedPeer {
    /// Exactly this workload (the destination's configured identity).
    Id(SpiffeId),
    /// Any workload of our trust domain (no identity configured for the
    /// destination: the connection is still encrypted and authenticated to
    /// the mesh, but not to one service).
    TrustDomain,
}

/// A client config for mesh traffic to one destination: TLS 1.3, the given
/// ALPN protocols, the server's chain checked against the latest trust
/// anchors and its SPIFFE ID against `expected` (no DNS name check: mesh
/// certificates name workloads, not hosts), the latest workload certificate
/// presented.
pub fn client_config(
    source: CredentialSource,
    expected: ExpectedPeer,
    alpn: &[&[u8]],
) -> Result<ClientConfig, Error> {
    let provider = crate::tls::mesh_provider();
    let algs = provider.signature_verification_algorithms;
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerVerifier {
            source: source.clone(),
            expected,
            algs,
        }))
        .with_client_cert_resolver(Arc::new(OwnCert { source }));
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Full handshakes only, with the latest credentials (see `server.rs`).
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(cfg)
}

#[derive(Debug)]
struct OwnCert {
    source: CredentialSource,
}

impl ResolvesClientCert for OwnCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.source.current().map(|m| m.certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

struct ServerVerifier {
    source: CredentialSource,
    expected: ExpectedPeer,
    algs: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for ServerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerVerifier")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let material = self
            .source
            .current()
            .ok_or_else(|| Error::General("no workload credentials yet".into()))?;
        let id = chain::verify(
            &material,
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            &self.algs,
        )?;
        match &self.expected {
            ExpectedPeer::Id(want) if *want != id => {
                tracing::debug!(expected = %want, presented = %id, "upstream has another identity");
                Err(Error::InvalidCertificate(CertificateError::NotValidForName))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
