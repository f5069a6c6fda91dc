//! Mutual TLS over real sockets: the acceptor `proxy_core::server` runs with a
//! mesh server config, clients are either the pooled upstream client with a
//! mesh client config or plain rustls clients presenting whatever a test
//! needs (nothing, another CA's certificate, an expired one).

mod mtls_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use mtls_support::{TestCa, raw_client};
use proxy_core::body::{self, Body};
use proxy_core::config::Protocol;
use proxy_core::forward::{ClientOptions, UpstreamClient, UpstreamTls};
use proxy_core::identity::{CredentialsSender, SpiffeId, credentials_channel};
use proxy_core::mtls::{ClientAuth, CredentialSource, ExpectedPeer, PeerIdentity, server_config};
use proxy_core::server::{ConnInfo, ConnLimits, Dispatch, Dispatched, Handler, RequestBody};
use proxy_core::server::{ServeOptions, serve_with};
use proxy_core::shutdown::{self, ShutdownTrigger};
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};

const SERVER_ID: &str = "spiffe://weir.local/ns/default/sa/payment";
const CLIENT_ID: &str = "spiffe://weir.local/ns/default/sa/order";

/// Answers `<peer identity or none> <HTTP version>`.
#[derive(Clone)]
struct WhoCalled;

impl Handler for WhoCalled {
    fn handle(
        self,
        req: Request<RequestBody>,
        conn: Arc<ConnInfo>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static {
        let ext = req.extensions().get::<PeerIdentity>().cloned();
        assert_eq!(ext, conn.peer, "extension and connection agree");
        let who = ext.map_or_else(|| "none".to_owned(), |p| p.id().to_string());
        let text = format!("{who} {:?}", req.version());
        async move { Response::new(body::full(text)) }
    }
}

/// Every connection is TLS with the mesh config.
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

struct Mesh {
    addr: SocketAddr,
    server_creds: CredentialsSender,
    server_source: CredentialSource,
    _stop: ShutdownTrigger,
}

async fn serve_mesh(ca: &TestCa, auth: ClientAuth) -> Mesh {
    let (tx, rx) = credentials_channel();
    tx.send_replace(Some(ca.credentials(SERVER_ID)));
    let source = CredentialSource::new(rx);
    let cfg = Arc::new(server_config(source.clone(), auth).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = shutdown::channel();
    tokio::spawn(serve_with(
        listener,
        ServeOptions::default(),
        MeshTls(cfg),
        shutdown,
    ));
    Mesh {
        addr,
        server_creds: tx,
        server_source: source,
        _stop: stop,
    }
}

fn mesh_client(
    ca: &TestCa,
    id: &str,
    expected: ExpectedPeer,
    protocol: Protocol,
) -> UpstreamClient {
    let (tx, rx) = credentials_channel();
    tx.send_replace(Some(ca.credentials(id)));
    // The sender may go: the watch keeps the last value.
    let tls = UpstreamTls::new(CredentialSource::new(rx), expected, protocol);
    UpstreamClient::with_tls(
        &ClientOptions {
            protocol,
            ..ClientOptions::default()
        },
        tls,
    )
}

async fn text(resp: Response<hyper::body::Incoming>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn get() -> Request<Body> {
    Request::get("/who")
        .header(http::header::HOST, "payment")
        .body(body::empty())
        .unwrap()
}

/// One request over a fresh rustls connection with `cfg`; `Err` when the
/// handshake or the exchange fails (with TLS 1.3 a refused client
/// certificate surfaces on the first read, after the client's handshake).
async fn raw_request(addr: SocketAddr, cfg: rustls::ClientConfig) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("http: {e}"))?;
    tokio::spawn(conn);
    let resp = send
        .send_request(get())
        .await
        .map_err(|e| format!("request: {e}"))?;
    if resp.status() != StatusCode::OK {
        return Err(format!("status {}", resp.status()));
    }
    Ok(text(resp).await)
}

#[tokio::test]
async fn peers_prove_their_identities_and_alpn_picks_h2() {
    let ca = TestCa::new("mesh");
    let mesh = serve_mesh(&ca, ClientAuth::Required).await;
    let expected = ExpectedPeer::Id(SpiffeId::parse(SERVER_ID).unwrap());
    let client = mesh_client(&ca, CLIENT_ID, expected.clone(), Protocol::Auto);
    for _ in 0..3 {
        let resp = client.send(get(), mesh.addr).await.unwrap();
        assert_eq!(text(resp).await, format!("{CLIENT_ID} HTTP/2.0"));
    }
    let h1 = mesh_client(&ca, CLIENT_ID, expected, Protocol::Http1);
    let resp = h1.send(get(), mesh.addr).await.unwrap();
    assert_eq!(text(resp).await, format!("{CLIENT_ID} HTTP/1.1"));
    assert_eq!(mesh.server_source.versions_used(), 1);
}

#[tokio::test]
async fn a_client_refuses_a_server_with_another_identity() {
    let ca = TestCa::new("mesh");
    let mesh = serve_mesh(&ca, ClientAuth::Required).await;
    let wrong =
        ExpectedPeer::Id(SpiffeId::parse("spiffe://weir.local/ns/default/sa/catalog").unwrap());
    let client = mesh_client(&ca, CLIENT_ID, wrong, Protocol::Http1);
    let err = client.send(get(), mesh.addr).await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // Any identity of the trust domain is enough when none is configured.
    let any = mesh_client(&ca, CLIENT_ID, ExpectedPeer::TrustDomain, Protocol::Http1);
    assert!(any.send(get(), mesh.addr).await.is_ok());
}

#[tokio::test]
async fn a_server_from_another_ca_is_refused() {
    let ca = TestCa::new("mesh");
    let mesh = serve_mesh(&TestCa::new("rogue"), ClientAuth::Required).await;
    let client = mesh_client(&ca, CLIENT_ID, ExpectedPeer::TrustDomain, Protocol::Http1);
    assert!(
        client
            .send(get(), mesh.addr)
            .await
            .unwrap_err()
            .is_connect()
    );
}

#[tokio::test]
async fn required_client_auth_refuses_missing_foreign_expired_and_out_of_domain_certificates() {
    let ca = TestCa::new("mesh");
    let mesh = serve_mesh(&ca, ClientAuth::Required).await;
    let ok = raw_request(mesh.addr, raw_client(Some(ca.leaf(CLIENT_ID)))).await;
    assert_eq!(ok.unwrap(), format!("{CLIENT_ID} HTTP/1.1"));

    let refused = [
        ("no certificate", raw_client(None)),
        (
            "another CA",
            raw_client(Some(TestCa::new("rogue").leaf(CLIENT_ID))),
        ),
        ("expired", raw_client(Some(ca.expired_leaf(CLIENT_ID)))),
        (
            "another trust domain",
            raw_client(Some(ca.leaf("spiffe://other.example/ns/default/sa/order"))),
        ),
        (
            "no SPIFFE ID",
            raw_client(Some(ca.leaf("https://order.example/"))),
        ),
    ];
    for (what, cfg) in refused {
        let r = raw_request(mesh.addr, cfg).await;
        assert!(r.is_err(), "{what}: {r:?}");
    }
}

#[tokio::test]
async fn optional_client_auth_lets_a_client_without_certificate_in_anonymously() {
    let ca = TestCa::new("mesh");
    let mesh = serve_mesh(&ca, ClientAuth::Optional).await;
    let anon = raw_request(mesh.addr, raw_client(None)).await.unwrap();
    assert_eq!(anon, "none HTTP/1.1");
    // A bad certificate is still refused: optional is not "anything goes".
    let r = raw_request(mesh.addr, raw_client(Some(ca.expired_leaf(CLIENT_ID)))).await;
    assert!(r.is_err(), "{r:?}");
}

#[tokio::test]
async fn a_rotation_applies_to_new_connections_and_keeps_open_ones() {
    let ca = TestCa::new("mesh");
    let mesh = serve_mesh(&ca, ClientAuth::Required).await;
    // An open HTTP/2 connection from before the rotation.
    let expected = ExpectedPeer::Id(SpiffeId::parse(SERVER_ID).unwrap());
    let before = mesh_client(&ca, CLIENT_ID, expected.clone(), Protocol::Auto);
    assert!(before.send(get(), mesh.addr).await.is_ok());
    assert_eq!(mesh.server_source.versions_used(), 1);

    // Rotate to a new CA entirely: new leaf, new anchors.
    let next = TestCa::new("mesh-next");
    mesh.server_creds
        .send_replace(Some(next.credentials(SERVER_ID)));
    let after = mesh_client(&next, CLIENT_ID, expected.clone(), Protocol::Auto);
    let resp = after.send(get(), mesh.addr).await.unwrap();
    assert_eq!(text(resp).await, format!("{CLIENT_ID} HTTP/2.0"));
    assert_eq!(mesh.server_source.versions_used(), 2);
    // The old connection still serves; a new one with the old CA does not.
    assert!(before.send(get(), mesh.addr).await.is_ok());
    let stale = mesh_client(&ca, CLIENT_ID, expected, Protocol::Http1);
    assert!(stale.send(get(), mesh.addr).await.is_err());
}

#[tokio::test]
async fn no_credentials_yet_is_a_connect_error_not_a_plaintext_fallback() {
    let ca = TestCa::new("mesh");
    let mesh = serve_mesh(&ca, ClientAuth::Required).await;
    let (_tx, rx) = credentials_channel();
    let tls = UpstreamTls::new(
        CredentialSource::new(rx),
        ExpectedPeer::TrustDomain,
        Protocol::Http1,
    );
    let client = UpstreamClient::with_tls(&ClientOptions::default(), tls);
    let err = tokio::time::timeout(Duration::from_secs(10), client.send(get(), mesh.addr))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let _ = Version::HTTP_11;
}

/// The cipher suite a handshake with `cfg` settles on.
async fn negotiated_suite(addr: SocketAddr, cfg: rustls::ClientConfig) -> rustls::CipherSuite {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.negotiated_cipher_suite().unwrap().suite()
}

#[tokio::test]
async fn mesh_hops_use_aes_128_gcm_and_other_suites_still_connect() {
    let ca = TestCa::new("mesh");
    let mesh = serve_mesh(&ca, ClientAuth::Optional).await;
    let (tx, rx) = credentials_channel();
    tx.send_replace(Some(ca.credentials(CLIENT_ID)));
    let ours = proxy_core::mtls::client_config(
        CredentialSource::new(rx),
        ExpectedPeer::TrustDomain,
        &[b"http/1.1"],
    )
    .unwrap();
    assert_eq!(
        negotiated_suite(mesh.addr, ours).await,
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
    );
    // A client preferring AES-256 (rustls' and OpenSSL's default) gets it.
    assert_eq!(
        negotiated_suite(mesh.addr, raw_client(None)).await,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
    );
}
