//! The TokenReview client against recorded API-server answers, served by a
//! real HTTPS server on 127.0.0.1 with its own CA, and the issuer using it.

mod support;

use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use proxy_core::identity::SpiffeId;
use support::{Scratch, local, start_issuer};
use tokio::net::TcpListener;
use weir_identity::authn::{Authenticator, AuthnError, TokenReview};
use weir_identity::client::FetchError;
use weir_identity::{IdentityClient, TokenSource};

const ISSUER_SA_TOKEN: &str = "issuer-own-service-account-token";

fn fixture(name: &str) -> Bytes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    Bytes::from(std::fs::read(path).unwrap())
}

/// What the fake API server saw.
#[derive(Default)]
struct Seen {
    requests: Vec<(String, Option<String>, serde_json::Value)>,
}

/// Serves recorded TokenReview answers over HTTPS, chosen by the reviewed
/// token. Returns the URL, the CA file and the record of requests.
async fn api_server(dir: &Path) -> (String, std::path::PathBuf, Arc<Mutex<Seen>>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let ca_file = dir.join("apiserver-ca.crt");
    std::fs::write(&ca_file, cert.pem()).unwrap();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(proxy_core::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind(local()).await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let record = record.clone();
                    async move { Ok::<_, Infallible>(answer(req, &record).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (url, ca_file, seen)
}

async fn answer(req: Request<Incoming>, seen: &Mutex<Seen>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let review: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    seen.lock()
        .unwrap()
        .requests
        .push((path, auth, review.clone()));
    let (status, name) = match review["spec"]["token"].as_str().unwrap_or("") {
        "good" => (StatusCode::CREATED, "tokenreview-authenticated.json"),
        "expired" => (StatusCode::CREATED, "tokenreview-expired.json"),
        "kube-audience" => (StatusCode::CREATED, "tokenreview-wrong-audience.json"),
        "unconfirmed-audience" => (
            StatusCode::CREATED,
            "tokenreview-audience-not-confirmed.json",
        ),
        _ => (StatusCode::FORBIDDEN, "tokenreview-forbidden.json"),
    };
    let mut resp = Response::new(Full::new(fixture(name)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    resp
}

async fn review_client(dir: &Path) -> (TokenReview, Arc<Mutex<Seen>>) {
    let (url, ca, seen) = api_server(dir).await;
    let own = dir.join("issuer-token");
    std::fs::write(&own, format!("{ISSUER_SA_TOKEN}\n")).unwrap();
    (
        TokenReview::new(&url, &ca, own, "weir-identity").unwrap(),
        seen,
    )
}

#[tokio::test]
async fn maps_an_authenticated_service_account_token_to_its_workload() {
    let dir = Scratch::new("tr-ok");
    let (review, seen) = review_client(&dir.0).await;
    let w = review.authenticate("good").await.unwrap();
    assert_eq!(
        (w.namespace.as_str(), w.service_account.as_str()),
        ("shop", "order")
    );

    let seen = seen.lock().unwrap();
    let (path, auth, body) = &seen.requests[0];
    assert_eq!(path, "/apis/authentication.k8s.io/v1/tokenreviews");
    assert_eq!(
        auth.as_deref(),
        Some(format!("Bearer {ISSUER_SA_TOKEN}").as_str())
    );
    assert_eq!(body["kind"], "TokenReview");
    assert_eq!(body["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(
        body["spec"]["audiences"],
        serde_json::json!(["weir-identity"])
    );
}

#[tokio::test]
async fn refuses_expired_and_other_audience_tokens() {
    let dir = Scratch::new("tr-refuse");
    let (review, _) = review_client(&dir.0).await;
    for token in ["expired", "kube-audience", "unconfirmed-audience"] {
        match review.authenticate(token).await {
            Err(AuthnError::Refused(reason)) => eprintln!("{token}: {reason}"),
            other => panic!("{token}: expected a refusal, got {other:?}"),
        }
    }
    // The API server refusing the issuer itself is not the caller's fault.
    assert!(matches!(
        review.authenticate("anything").await,
        Err(AuthnError::Unavailable(_))
    ));
}

#[tokio::test]
async fn the_issuer_gives_service_account_identities_from_token_reviews() {
    let dir = Scratch::new("tr-issuer");
    let (review, _) = review_client(&dir.0).await;
    let issuer = start_issuer(
        &dir.0.join("ca"),
        Arc::new(review),
        Duration::from_secs(3600),
        local(),
    )
    .await;
    let client = |token: &str| {
        IdentityClient::new(
            &issuer.url,
            &issuer.anchors,
            TokenSource::Value(token.to_owned()),
            None,
        )
        .unwrap()
    };
    let creds = client("good").fetch().await.unwrap();
    assert_eq!(
        creds.id,
        SpiffeId::for_workload("weir.local", "shop", "order").unwrap()
    );
    match client("expired").fetch().await.unwrap_err() {
        FetchError::Refused { status, .. } => assert_eq!(status, StatusCode::UNAUTHORIZED),
        e => panic!("{e}"),
    }
    match client("anything").fetch().await.unwrap_err() {
        FetchError::Refused { status, detail } => {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(detail.contains("identity-authn-unavailable"), "{detail}");
        }
        e => panic!("{e}"),
    }
    issuer.shut_down().await;
}
