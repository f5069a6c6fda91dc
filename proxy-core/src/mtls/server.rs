//! The acceptor's side: present the workload's certificate, verify clients'.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, Error, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::source::CredentialSource;
use super::{ALPN_H2, ALPN_HTTP11, chain};

/// Whether a TLS client must present a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// A client certificate is asked for; without one the handshake still
    /// succeeds and the connection has no peer identity, so the authorization
    /// policy decides per request.
    Optional,
    /// The handshake fails without a valid client certificate.
    Required,
}

/// A server config for mesh traffic: TLS 1.3, ALPN `h2` then `http/1.1`, the
/// latest workload certificate, client certificates verified against the
/// latest trust anchors and trust domain.
///
/// Build it once per listener: credentials are read per handshake.
pub fn server_config(source: CredentialSource, auth: ClientAuth) -> Result<ServerConfig, Error> {
    let provider = crate::tls::mesh_provider();
    let algs = provider.signature_verification_algorithms;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(ClientVerifier {
            source: source.clone(),
            mandatory: auth == ClientAuth::Required,
            algs,
        }))
        .with_cert_resolver(Arc::new(OwnCert { source }));
    cfg.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    // No session resumption: a resumed handshake would skip the certificate
    // checks against the current anchors and keep a peer's old chain alive
    // past a rotation. Every handshake is a full one with the latest
    // credentials; connection reuse (HTTP/2 between sidecars) keeps them rare.
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    Ok(cfg)
}

#[derive(Debug)]
struct OwnCert {
    source: CredentialSource,
}

impl ResolvesServerCert for OwnCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.source.current().map(|m| m.certified.clone())
    }
}

struct ClientVerifier {
    source: CredentialSource,
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for ClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientVerifier")
            .field("mandatory", &self.mandatory)
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    /// No hints: the anchors change with rotation and every mesh client has
    /// exactly one certificate to offer anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let material = self
            .source
            .current()
            .ok_or_else(|| Error::General("no workload credentials yet".into()))?;
        chain::verify(
            &material,
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            &self.algs,
        )?;
        Ok(ClientCertVerified::assertion())
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
