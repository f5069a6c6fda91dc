//! JWK sets served over HTTP(S) by the test: key rotation is picked up without
//! a restart, and unknown key ids cannot make the gateway hammer the host.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::Algorithm;
use serde_json::json;
use tokio::net::TcpListener;
use weir_policy::PolicyState;

/// A JWKS endpoint whose document the test can change, counting fetches.
struct JwksServer {
    addr: SocketAddr,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(initial: String, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = Arc::new(Mutex::new(initial));
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, h) = (body.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (b, h, tls) = (b.clone(), h.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |_req| {
                        h.fetch_add(1, Ordering::SeqCst);
                        let doc = b.lock().unwrap().clone();
                        async move {
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(doc))))
                        }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                        Some(cfg) => {
                            if let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await {
                                let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, body, hits }
    }

    fn set(&self, doc: String) {
        *self.body.lock().unwrap() = doc;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn jwks(keys: &[(&str, &str)]) -> String {
    let keys: Vec<_> = keys
        .iter()
        .map(|(file, kid)| public_jwk(Algorithm::RS256, file, kid))
        .collect();
    json!({ "keys": keys }).to_string()
}

fn config(url: &str, floor: &str, extra: &str) -> String {
    format!(
        r#"
auth:
  # The floor is what is tested here, not the failed-authentication throttle.
  failure_limit: {{ enabled: false }}
  jwt:
    - issuer: {ISSUER}
      audiences: [{AUDIENCE}]
      jwks: {{ url: "{url}", refresh: 1h, min_refresh_interval: {floor} {extra} }}
      algorithms: [RS256]
routes:
  - name: r
    auth: {{ any_of: [jwt] }}
"#
    )
}

async fn reason(b: &Built, file: &str, kid: &str) -> &'static str {
    let token = mint(
        Algorithm::RS256,
        &signing_key(Algorithm::RS256, file),
        Some(kid),
        &claims(json!({})),
    );
    let auth = bearer(&token);
    let mut parts = request("GET", "/", &[("authorization", &auth)]);
    match b.policies.check(b.route("r"), &mut parts, PEER).await {
        Ok(_) => "admitted",
        Err(r) => r.reason(),
    }
}

#[tokio::test]
async fn rotated_key_is_picked_up_without_restart() {
    let server = JwksServer::start(jwks(&[("rsa-a.pem", "k1")]), None).await;
    let url = format!("http://{}/.well-known/jwks.json", server.addr);
    let b = build(&config(&url, "0s", ""), &PolicyState::new());
    assert_eq!(reason(&b, "rsa-a.pem", "k1").await, "admitted");
    // Not yet published: rejected (after one early fetch).
    assert_eq!(reason(&b, "rsa-b.pem", "k2").await, "unknown_kid");
    // The issuer rotates: k2 in, k1 out.
    server.set(jwks(&[("rsa-b.pem", "k2")]));
    assert_eq!(reason(&b, "rsa-b.pem", "k2").await, "admitted");
    assert_eq!(reason(&b, "rsa-a.pem", "k1").await, "unknown_kid");
    assert!(server.hits() >= 3);
}

#[tokio::test]
async fn unknown_kids_do_not_hammer_the_jwks_host() {
    let server = JwksServer::start(jwks(&[("rsa-a.pem", "k1")]), None).await;
    let url = format!("http://{}/jwks", server.addr);
    let b = build(&config(&url, "1h", ""), &PolicyState::new());
    assert_eq!(reason(&b, "rsa-a.pem", "k1").await, "admitted");
    let before = server.hits();
    assert_eq!(before, 1, "one initial fetch");
    for i in 0..50 {
        assert_eq!(
            reason(&b, "rsa-b.pem", &format!("made-up-{i}")).await,
            "unknown_kid"
        );
    }
    assert_eq!(server.hits(), before, "the refresh floor holds");
}

#[tokio::test]
async fn jwks_over_https_with_a_private_ca() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let der = rustls_pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    let server = JwksServer::start(jwks(&[("rsa-a.pem", "k1")]), Some(Arc::new(server_cfg))).await;
    let ca = std::env::temp_dir().join(format!(
        "weir-policy-ca-{}-{}.pem",
        std::process::id(),
        server.addr.port()
    ));
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let url = format!("https://127.0.0.1:{}/jwks", server.addr.port());
    let extra = format!(", ca_file: \"{}\"", ca.display());
    let b = build(&config(&url, "0s", &extra), &PolicyState::new());
    assert_eq!(reason(&b, "rsa-a.pem", "k1").await, "admitted");
    std::fs::remove_file(&ca).ok();
}
