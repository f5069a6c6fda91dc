//! HTTP/2 at both edges: h2c with prior knowledge from a client, TLS with
//! ALPN `h2` and `http/1.1` and certificates chosen by SNI, and HTTP/2 to an
//! upstream configured `protocol: http2` with gRPC-style trailers passing
//! through to the client.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response, Version};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
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

#[tokio::test]
async fn h2c_with_prior_knowledge() {
    let up = echo_upstream("echo").await;
    let gw = TestGateway::start(&echo_yaml(
        "  - name: public\n    address: 127.0.0.1:0\n",
        &up,
    ))
    .await;
    let c = h2c_client();
    // Several concurrent streams on the one HTTP/2 connection.
    let replies = futures_util::future::join_all((0..8).map(|i| {
        let req = Request::get(gw.url(&format!("/h2/{i}")))
            .body(empty())
            .unwrap();
        send_with(&c, req)
    }))
    .await;
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.status, 200);
        assert_eq!(r.version, Version::HTTP_2);
        let doc = r.json();
        assert_eq!(doc["uri"], format!("/h2/{i}"));
        assert_eq!(
            doc["version"], "HTTP/1.1",
            "an http1 upstream is spoken to in HTTP/1.1"
        );
        assert_eq!(
            r.seen("host"),
            [gw.addr().to_string()],
            ":authority becomes Host"
        );
        assert_eq!(r.seen("x-forwarded-proto"), ["http"]);
    }
}

/// A CA and two leaf certificates (`a.test`, `b.test`) written as PEM files.
struct Pki {
    ca: CertificateDer<'static>,
    leaves: Vec<CertificateDer<'static>>,
}

fn make_pki(dir: &TempDir) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Weir test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut leaves = Vec::new();
    for name in ["a.test", "b.test"] {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        dir.write(&format!("{name}.crt"), &cert.pem());
        dir.write(&format!("{name}.key"), &key.serialize_pem());
        leaves.push(cert.der().clone());
    }
    Pki {
        ca: ca.der().clone(),
        leaves,
    }
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
    let pki = make_pki(&dir);
    let d = dir.path().display();
    let listeners = format!(
        "  - name: public\n    address: 127.0.0.1:0\n  - name: secure\n    address: 127.0.0.1:0\n    tls:\n      certificates:\n        - {{ cert: {d}/a.test.crt, key: {d}/a.test.key }}\n        - {{ cert: {d}/b.test.crt, key: {d}/b.test.key }}\n"
    );
    let gw = TestGateway::start_in(dir, &echo_yaml(&listeners, &up)).await;
    let addr = gw.addrs["secure"];

    // SNI picks the certificate.
    for (sni, leaf) in [("a.test", &pki.leaves[0]), ("b.test", &pki.leaves[1])] {
        let tls = tls_connect(addr, &pki.ca, sni, &[b"h2", b"http/1.1"]).await;
        let (_, session) = tls.get_ref();
        assert_eq!(
            session.peer_certificates().unwrap()[0],
            *leaf,
            "certificate for {sni}"
        );
        assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]), "h2 preferred");
    }

    // ALPN h2.
    let tls = tls_connect(addr, &pki.ca, "a.test", &[b"h2"]).await;
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
    let tls = tls_connect(addr, &pki.ca, "b.test", &[b"http/1.1"]).await;
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

/// A gRPC-shaped upstream: answers every call with one message and the
/// `grpc-status` in trailers, reporting what it received in headers.
async fn grpc_upstream() -> Upstream {
    start_upstream(|req| async move {
        let version = format!("{:?}", req.version());
        let te = req
            .headers()
            .get("te")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let path = req.uri().path().to_owned();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let mut trailers = HeaderMap::new();
        if path.ends_with("/Fail") {
            trailers.insert("grpc-status", "5".parse().unwrap());
            trailers.insert("grpc-message", "not found".parse().unwrap());
        } else {
            trailers.insert("grpc-status", "0".parse().unwrap());
        }
        trailers.insert("x-echo-len", body.len().to_string().parse().unwrap());
        let frames = vec![
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi"))),
            Ok(Frame::trailers(trailers)),
        ];
        Response::builder()
            .header("content-type", "application/grpc")
            .header("x-upstream-version", version)
            .header("x-upstream-te", te)
            .body(StreamBody::new(stream::iter(frames)).boxed_unsync())
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn grpc_trailers_pass_through_http2_upstream() {
    let up = grpc_upstream().await;
    let yaml = config(&format!(
        "upstreams:\n  grpc: {{ endpoints: [{}], protocol: http2 }}\nroutes:\n  - name: grpc\n    match: {{ path_prefix: /weir.Test }}\n    upstream: grpc\n",
        up.addr
    ));
    let gw = TestGateway::start(&yaml).await;
    let c = h2c_client();
    for (method, status) in [("Ok", "0"), ("Fail", "5")] {
        let req = Request::post(gw.url(&format!("/weir.Test/{method}")))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(full(&b"\0\0\0\0\x05hello"[..]))
            .unwrap();
        let r = send_with(&c, req).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-upstream-version"),
            Some("HTTP/2.0"),
            "the upstream was spoken to in HTTP/2"
        );
        assert_eq!(r.header("x-upstream-te"), Some("trailers"));
        assert_eq!(&r.body[..], b"\0\0\0\0\x02hi");
        let trailers = r.trailers.as_ref().expect("trailers reach the client");
        assert_eq!(trailers["grpc-status"], status);
        assert_eq!(
            trailers["x-echo-len"], "10",
            "the request body arrived whole"
        );
        if status == "5" {
            assert_eq!(trailers["grpc-message"], "not found");
        }
    }
    // One upstream HTTP/2 connection carried both calls.
    assert_eq!(up.connections(), 1);
}
