//! A meshed upstream for the gateway's mutual TLS tests: a mesh acceptor
//! that requires a client certificate (what a sidecar's inbound port in
//! `strict` mode does) and answers with the SPIFFE ID the caller proved;
//! and workload certificates from a real `weir_identity` CA, written the
//! way cert-manager lays them out.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Request, Response};
use proxy_core::body::{self, Body};
use proxy_core::identity::{Credentials, SpiffeId, credentials_channel};
use proxy_core::mtls::{ClientAuth, CredentialSource, PeerIdentity, server_config};
use proxy_core::server::{
    ConnInfo, ConnLimits, Dispatch, Dispatched, Handler, RequestBody, ServeOptions, serve_with,
};
use proxy_core::shutdown::{self, ShutdownTrigger};
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use tokio::net::{TcpListener, TcpStream};
use weir_identity::FileSource;
use weir_identity::ca::Ca;
use weir_identity::sign::sign_csr;

/// Answers every request with the caller's proven SPIFFE ID (`none`).
#[derive(Clone)]
struct WhoCalled;

impl Handler for WhoCalled {
    fn handle(
        self,
        req: Request<RequestBody>,
        _conn: Arc<ConnInfo>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static {
        let who = req
            .extensions()
            .get::<PeerIdentity>()
            .map_or_else(|| "none".to_owned(), |p| p.id().to_string());
        async move { Response::new(body::full(who)) }
    }
}

#[derive(Clone)]
struct MeshTls(Arc<rustls::ServerConfig>);

impl Dispatch for MeshTls {
    type Handler = WhoCalled;

    async fn dispatch(
        self,
        stream: TcpStream,
        _remote: SocketAddr,
        _limits: &ConnLimits,
    ) -> Dispatched<WhoCalled> {
        Dispatched::Tls {
            stream,
            handler: WhoCalled,
            config: self.0,
        }
    }
}

/// A meshed upstream proving `credentials` and requiring a client
/// certificate that leads to one of their trust anchors.
pub(crate) async fn meshed_upstream(
    credentials: Arc<Credentials>,
) -> (SocketAddr, ShutdownTrigger) {
    let (tx, rx) = credentials_channel();
    tx.send_replace(Some(credentials));
    let cfg = server_config(CredentialSource::new(rx), ClientAuth::Required).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, signal) = shutdown::channel();
    tokio::spawn(serve_with(
        listener,
        ServeOptions::default(),
        MeshTls(Arc::new(cfg)),
        signal,
    ));
    (addr, stop)
}

/// Signs a certificate for `spiffe://weir.local/ns/default/sa/<sa>` with
/// `ca` and writes `tls.crt`, `tls.key` and `ca.crt` into `dir`.
pub(crate) fn write_workload_files(ca: &Ca, dir: &Path, sa: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let id = SpiffeId::for_workload(ca.trust_domain(), "default", sa).unwrap();
    let issued = sign_csr(ca, &csr, &id, Duration::from_secs(3600), SystemTime::now()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("tls.crt"), issued.chain_pem).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.anchor_pem()).unwrap();
}

/// Credentials of workload `sa` signed by `ca` (written to and loaded from
/// `dir`, as a cert-manager source would).
pub(crate) fn workload_credentials(ca: &Ca, dir: &Path, sa: &str) -> Arc<Credentials> {
    write_workload_files(ca, dir, sa);
    Arc::new(FileSource::in_dir(dir).load().unwrap())
}
