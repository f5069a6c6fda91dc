//! The gateway originating mutual TLS to an upstream sidecar with its own
//! workload identity: the upstream (a mesh acceptor requiring client
//! certificates) sees the gateway's SPIFFE ID; an upstream proving another
//! identity than configured is refused; without `tls:` nothing changes.

#[path = "../../proxy-core/tests/mtls_support/mod.rs"]
mod mtls_support;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use mtls_support::TestCa;
use proxy_core::body::{self, Body};
use proxy_core::identity::credentials_channel;
use proxy_core::mtls::{ClientAuth, CredentialSource, PeerIdentity, server_config};
use proxy_core::server::{
    ConnInfo, ConnLimits, Dispatch, Dispatched, Handler, RequestBody, ServeOptions, serve_with,
};
use proxy_core::shutdown::{self, ShutdownTrigger};
use support::*;
use tokio::net::{TcpListener, TcpStream};

const TD: &str = "spiffe://weir.local/ns/edge/sa";

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

/// A meshed upstream proving `spiffe://…/payment`.
async fn meshed_upstream(ca: &TestCa) -> (SocketAddr, ShutdownTrigger) {
    let (tx, rx) = credentials_channel();
    tx.send_replace(Some(ca.credentials(&format!("{TD}/payment"))));
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

#[tokio::test]
async fn the_gateway_proves_its_identity_to_meshed_upstreams() {
    let ca = TestCa::new("mesh");
    let (up, _stop) = meshed_upstream(&ca).await;
    let (tx, rx) = credentials_channel();
    tx.send_replace(Some(ca.credentials(&format!("{TD}/gateway"))));
    let yaml = config(&format!(
        "upstreams:\n  payment:\n    endpoints: [{up}]\n    tls: {{ identity: {TD}/payment }}\n  impostor:\n    endpoints: [{up}]\n    tls: {{ identity: {TD}/catalog }}\nroutes:\n  - name: pay\n    match: {{ path_prefix: /pay }}\n    upstream: payment\n  - name: fake\n    match: {{ path_prefix: /fake }}\n    upstream: impostor\n"
    ));
    let gw = TestGateway::start_with_credentials(TempDir::new(), &yaml, Some(rx)).await;
    let ok = get(&gw.url("/pay")).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.text(), format!("{TD}/gateway"));
    let refused = get(&gw.url("/fake")).await;
    assert_eq!(refused.status, 502, "{}", refused.text());
}

#[tokio::test]
async fn an_upstream_with_tls_but_no_gateway_identity_is_never_plaintext() {
    let ca = TestCa::new("mesh");
    let (up, _stop) = meshed_upstream(&ca).await;
    let yaml = config(&format!(
        "upstreams:\n  payment:\n    endpoints: [{up}]\n    tls: {{}}\nroutes:\n  - name: pay\n    match: {{ path_prefix: / }}\n    upstream: payment\n"
    ));
    let gw = TestGateway::start(&yaml).await;
    let r = get(&gw.url("/pay")).await;
    assert!(r.status.is_server_error(), "{}", r.status);
}
