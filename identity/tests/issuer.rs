//! The issuer and its client over real sockets and real TLS: identities are
//! what the token says, refusals are problems, certificates chain to the
//! anchor and work in a mutual-TLS handshake.

mod support;

use std::time::{Duration, SystemTime};

use http::StatusCode;
use proxy_core::identity::SpiffeId;
use support::{Scratch, bootstrap, local, mutual_tls, start_issuer, token};
use weir_identity::client::FetchError;
use weir_identity::svid::SvidError;
use weir_identity::{IdentityClient, TokenSource};

fn id(sa: &str) -> SpiffeId {
    SpiffeId::for_workload("weir.local", "default", sa).unwrap()
}

#[tokio::test]
async fn issues_certificates_that_carry_the_tokens_identity_and_chain_to_the_anchor() {
    let dir = Scratch::new("issue");
    let issuer = start_issuer(
        &dir.0,
        bootstrap(&["catalog", "order"]),
        Duration::from_secs(24 * 3600),
        local(),
    )
    .await;
    let client_for = |sa: &str| {
        IdentityClient::new(
            &issuer.url,
            &issuer.anchors,
            TokenSource::Value(token(sa)),
            Some(id(sa)),
        )
        .unwrap()
    };
    let catalog = client_for("catalog").fetch().await.unwrap();
    let order = client_for("order").fetch().await.unwrap();
    assert_eq!(catalog.id, id("catalog"));
    assert_eq!(order.id, id("order"));
    assert_eq!(catalog.chain.len(), 2, "leaf and issuer");
    assert_eq!(catalog.trust_anchors, issuer.anchors);
    let left = catalog.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(23 * 3600) && left <= Duration::from_secs(24 * 3600));

    // Each certificate proves its identity to the other in a real handshake.
    assert_eq!(mutual_tls(&catalog, &order).await.unwrap(), id("order"));
    assert_eq!(mutual_tls(&order, &catalog).await.unwrap(), id("catalog"));

    // The key is fresh per request.
    let again = client_for("catalog").fetch().await.unwrap();
    assert_ne!(again.chain[0], catalog.chain[0]);
    issuer.shut_down().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_the_handshake() {
    let (a, b) = (Scratch::new("ca-a"), Scratch::new("ca-b"));
    let ia = start_issuer(
        &a.0,
        bootstrap(&["catalog"]),
        Duration::from_secs(3600),
        local(),
    )
    .await;
    let ib = start_issuer(
        &b.0,
        bootstrap(&["order"]),
        Duration::from_secs(3600),
        local(),
    )
    .await;
    let catalog = IdentityClient::new(
        &ia.url,
        &ia.anchors,
        TokenSource::Value(token("catalog")),
        None,
    )
    .unwrap()
    .fetch()
    .await
    .unwrap();
    let order = IdentityClient::new(
        &ib.url,
        &ib.anchors,
        TokenSource::Value(token("order")),
        None,
    )
    .unwrap()
    .fetch()
    .await
    .unwrap();
    assert!(mutual_tls(&catalog, &order).await.is_err());
    // And a client that trusts anchor A refuses to talk to issuer B at all.
    let err = IdentityClient::new(
        &ib.url,
        &ia.anchors,
        TokenSource::Value(token("order")),
        None,
    )
    .unwrap()
    .fetch()
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::Https(_)), "{err}");
    ia.shut_down().await;
    ib.shut_down().await;
}

#[tokio::test]
async fn refuses_unknown_tokens_with_a_problem() {
    let dir = Scratch::new("refuse");
    let issuer = start_issuer(
        &dir.0,
        bootstrap(&["catalog"]),
        Duration::from_secs(3600),
        local(),
    )
    .await;
    let wrong = IdentityClient::new(
        &issuer.url,
        &issuer.anchors,
        TokenSource::Value(token("intruder")),
        None,
    )
    .unwrap();
    match wrong.fetch().await.unwrap_err() {
        FetchError::Refused { status, detail } => {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert!(
                detail.starts_with("https://weir.dev/problems/identity-unauthenticated"),
                "{detail}"
            );
        }
        e => panic!("expected a refusal, got {e}"),
    }

    // The raw answers: problem+json, for no token and for a broken body.
    let tls = weir_identity::https::client_config(&issuer.anchors).unwrap();
    let uri: http::Uri = format!("{}/v1/certificates", issuer.url).parse().unwrap();
    let no_token = weir_identity::https::post_json(
        &uri,
        Some(&tls),
        None,
        b"{}".to_vec(),
        4096,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_token.content_type.unwrap(), "application/problem+json");
    let bad_csr = weir_identity::https::post_json(
        &uri,
        Some(&tls),
        Some(&token("catalog")),
        br#"{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}"#.to_vec(),
        4096,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(bad_csr.status, StatusCode::BAD_REQUEST);
    let doc: serde_json::Value = serde_json::from_slice(&bad_csr.body).unwrap();
    assert_eq!(doc["type"], "https://weir.dev/problems/identity-bad-csr");
    let huge = weir_identity::https::post_json(
        &uri,
        Some(&tls),
        Some(&token("catalog")),
        vec![b' '; 100 * 1024],
        4096,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    issuer.shut_down().await;
}

#[tokio::test]
async fn a_token_for_one_service_cannot_obtain_anothers_identity() {
    let dir = Scratch::new("steal");
    let issuer = start_issuer(
        &dir.0,
        bootstrap(&["order", "payment"]),
        Duration::from_secs(3600),
        local(),
    )
    .await;
    // order's token, a CSR that asks for payment's SPIFFE ID (the client puts
    // the expected ID in the CSR's SANs): the issuer signs order's ID anyway,
    // and the client refuses a certificate that is not the one it wanted.
    let thief = IdentityClient::new(
        &issuer.url,
        &issuer.anchors,
        TokenSource::Value(token("order")),
        Some(id("payment")),
    )
    .unwrap();
    match thief.fetch().await.unwrap_err() {
        FetchError::Svid(SvidError::WrongId { found, expected }) => {
            assert_eq!(found, id("order"));
            assert_eq!(expected, id("payment"));
        }
        e => panic!("expected the issuer to sign order's identity, got {e}"),
    }
    issuer.shut_down().await;
}

#[tokio::test]
async fn reads_the_token_file_on_every_request() {
    let dir = Scratch::new("tokenfile");
    let issuer = start_issuer(
        &dir.0,
        bootstrap(&["catalog"]),
        Duration::from_secs(3600),
        local(),
    )
    .await;
    let file = dir.0.join("token");
    std::fs::write(&file, "not-the-token\n").unwrap();
    let client = IdentityClient::new(
        &issuer.url,
        &issuer.anchors,
        TokenSource::File(file.clone()),
        None,
    )
    .unwrap();
    assert!(matches!(
        client.fetch().await,
        Err(FetchError::Refused { .. })
    ));
    std::fs::write(&file, format!("{}\n", token("catalog"))).unwrap();
    assert_eq!(client.fetch().await.unwrap().id, id("catalog"));
    issuer.shut_down().await;
}
