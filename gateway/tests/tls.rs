//! TLS termination: ALPN `h2` and `http/1.1`, the certificate chosen by SNI,
//! and certificates replaced by a reload while established TLS connections
//! carry on. Certificates are generated in the test with rcgen.

mod support;

use std::sync::Arc;

use http::{Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, ServerName};
use support::*;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

fn echo_yaml(listeners: &str, up: &Upstream) -> String {
    format!(
        "listeners:\n{listeners}admin:\n  address: 127.0.0.1:0\nupstreams:\n  echo: {{ endpoints: [{}] }}\nroutes:\n  - name: echo\n    match: {{ path_prefix: / }}\n    upstream: echo\n",
        up.addr
    )
}

/// A test CA that issues leaf certificates into a directory as PEM files.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Weir test CA");
        Self {
            ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn root(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// Issues a certificate for `name` with a fresh key, written as
    /// `<name>.crt` and `<name>.key` in `dir`; returns its DER.
    fn issue(&self, dir: &TempDir, name: &str) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &self.ca)
            .unwrap();
        dir.write(&format!("{name}.crt"), &cert.pem());
        dir.write(&format!("{name}.key"), &key.serialize_pem());
        cert.der().clone()
    }
}

fn tls_listeners(dir: &TempDir, names: &[&str]) -> String {
    let d = dir.path().display();
    let certs: String = names
        .iter()
        .map(|n| format!("        - {{ cert: {d}/{n}.crt, key: {d}/{n}.key }}\n"))
        .collect();
    format!(
        "  - name: public\n    address: 127.0.0.1:0\n  - name: secure\n    address: 127.0.0.1:0\n    tls:\n      certificates:\n{certs}"
    )
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    ca: &CertificateDer<'static>,
    sni: &str,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

#[tokio::test]
async fn tls_alpn_and_sni() {
    let up = echo_upstream("echo").await;
    let dir = TempDir::new();
    let pki = Pki::new();
    let leaves = [pki.issue(&dir, "a.test"), pki.issue(&dir, "b.test")];
    let ca = pki.root();
    let listeners = tls_listeners(&dir, &["a.test", "b.test"]);
    let gw = TestGateway::start_in(dir, &echo_yaml(&listeners, &up)).await;
    let addr = gw.addrs["secure"];

    // SNI picks the certificate.
    for (sni, leaf) in [("a.test", &leaves[0]), ("b.test", &leaves[1])] {
        let tls = tls_connect(addr, &ca, sni, &[b"h2", b"http/1.1"]).await;
        let (_, session) = tls.get_ref();
        assert_eq!(
            session.peer_certificates().unwrap()[0],
            *leaf,
            "certificate for {sni}"
        );
        assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]), "h2 preferred");
    }

    // ALPN h2.
    let tls = tls_connect(addr, &ca, "a.test", &[b"h2"]).await;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            Request::get("https://a.test/over-h2")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    let r = read_reply(resp).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["uri"], "/over-h2");
    assert_eq!(r.seen("x-forwarded-proto"), ["https"]);
    assert_eq!(r.seen("x-forwarded-host"), ["a.test"]);

    // ALPN http/1.1.
    let tls = tls_connect(addr, &ca, "b.test", &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    let req = Request::get("/over-h1")
        .header("host", "b.test")
        .body(empty())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.version(), Version::HTTP_11);
    let r = read_reply(resp).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["uri"], "/over-h1");
    assert_eq!(r.seen("x-forwarded-proto"), ["https"]);

    // The plaintext listener stays plaintext.
    assert_eq!(
        get(&gw.url("/plain")).await.seen("x-forwarded-proto"),
        ["http"]
    );
}

#[tokio::test]
async fn reload_replaces_certificates_and_keeps_open_connections() {
    let up = echo_upstream("echo").await;
    let dir = TempDir::new();
    let pki = Pki::new();
    let first = pki.issue(&dir, "a.test");
    let ca = pki.root();
    let yaml = echo_yaml(&tls_listeners(&dir, &["a.test"]), &up);
    let gw = TestGateway::start_in(dir, &yaml).await;
    let addr = gw.addrs["secure"];

    // An HTTP/2 connection opened before the reload.
    let tls = tls_connect(addr, &ca, "a.test", &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0], first);
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let resp = sender
        .send_request(Request::get("https://a.test/before").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(read_reply(resp).await.status, 200);

    // Rotate: a new key and certificate in the same files, then reload.
    let rotated = pki.issue(&gw.dir, "a.test");
    assert_ne!(rotated, first);
    gw.reload().await.expect("reload");

    let tls = tls_connect(addr, &ca, "a.test", &[b"h2"]).await;
    assert_eq!(
        tls.get_ref().1.peer_certificates().unwrap()[0],
        rotated,
        "new handshakes get the new certificate"
    );

    let resp = sender
        .send_request(Request::get("https://a.test/after").body(empty()).unwrap())
        .await
        .unwrap();
    let r = read_reply(resp).await;
    assert_eq!(
        r.status, 200,
        "the connection opened before the reload still serves"
    );
    assert_eq!(r.json()["uri"], "/after");

    // A certificate file that cannot be read fails the reload and keeps the old one.
    std::fs::write(gw.dir.path().join("a.test.key"), "not a key").unwrap();
    let errors = gw.reload().await.expect_err("an unreadable key is refused");
    assert!(
        errors
            .iter()
            .any(|e| e.path.starts_with("listeners[1].tls.certificates[0]")),
        "{errors}"
    );
    let tls = tls_connect(addr, &ca, "a.test", &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0], rotated);
}
