//! Shared test helpers: scratch directories, an issuer on 127.0.0.1:0, and a
//! real mutual-TLS handshake between two sets of credentials.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proxy_core::identity::{Credentials, SpiffeId};
use proxy_core::shutdown::ShutdownTrigger;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_identity::authn::{Authenticator, BootstrapTokens};
use weir_identity::{Issuer, IssuerOptions};

pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "weir-identity-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A 64-character token for `service`.
pub fn token(service: &str) -> String {
    format!("{service:-<16}{}", "0123456789abcdef".repeat(3))
}

pub fn bootstrap(services: &[&str]) -> Arc<dyn Authenticator> {
    Arc::new(
        BootstrapTokens::from_pairs(services.iter().map(|s| ((*s).to_owned(), token(s)))).unwrap(),
    )
}

pub struct RunningIssuer {
    pub addr: SocketAddr,
    pub url: String,
    pub anchors: Vec<CertificateDer<'static>>,
    pub stop: ShutdownTrigger,
    pub task: tokio::task::JoinHandle<()>,
}

impl RunningIssuer {
    /// Stops the issuer and waits until its listener is closed.
    pub async fn shut_down(self) -> SocketAddr {
        self.stop.trigger();
        self.task.await.unwrap();
        self.addr
    }
}

/// Starts an issuer for the CA in `dir` (created when missing) on `bind`.
pub async fn start_issuer(
    dir: &std::path::Path,
    authn: Arc<dyn Authenticator>,
    lifetime: Duration,
    bind: SocketAddr,
) -> RunningIssuer {
    let opts = IssuerOptions {
        lifetime,
        ..IssuerOptions::default()
    };
    let issuer = Issuer::load_or_init(dir, "weir.local", authn, &opts).unwrap();
    let anchors = vec![issuer.ca().anchor().clone()];
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = proxy_core::shutdown::channel();
    let task = tokio::spawn(issuer.serve(listener, shutdown));
    RunningIssuer {
        addr,
        url: format!("https://127.0.0.1:{}", addr.port()),
        anchors,
        stop,
        task,
    }
}

pub fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A server verifier that checks the chain against the anchors and the URI
/// SAN against an expected SPIFFE ID (no DNS name: SPIFFE certificates have
/// none), the way peers check each other in the mesh.
#[derive(Debug)]
struct SpiffeServerVerifier {
    roots: rustls::RootCertStore,
    expected: SpiffeId,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let (id, _) = weir_identity::svid::identity_of(end_entity)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        if id != self.expected {
            return Err(rustls::Error::General(format!("peer is {id}")));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn roots(anchors: &[CertificateDer<'static>]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for a in anchors {
        roots.add(a.clone()).unwrap();
    }
    roots
}

/// A real mutual-TLS handshake on 127.0.0.1: `server` requires a client
/// certificate leading to its anchors, `client` requires the server to be
/// `server.id`. Returns the SPIFFE ID the server saw, or the handshake error.
pub async fn mutual_tls(server: &Credentials, client: &Credentials) -> Result<SpiffeId, String> {
    let provider = proxy_core::tls::provider();
    let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(&server.trust_anchors)),
        provider.clone(),
    )
    .build()
    .unwrap();
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(server.chain.clone(), server.key.clone_key())
        .unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier {
            roots: roots(&client.trust_anchors),
            expected: server.id.clone(),
            provider: provider.clone(),
        }))
        .with_client_auth_cert(client.chain.clone(), client.key.clone_key())
        .unwrap();
    let listener = TcpListener::bind(local()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let server_side = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let peer = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(b"pong").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.ok();
        Ok::<_, String>(weir_identity::svid::identity_of(&peer).unwrap().0)
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));
    let name = ServerName::try_from("peer.invalid").unwrap();
    let client_result = async {
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    }
    .await;
    let server_result = server_side.await.unwrap();
    client_result?;
    server_result
}
