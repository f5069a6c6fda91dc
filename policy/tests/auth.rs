//! Authentication through `Policies::check`, with tokens minted here.

mod common;

use common::*;
use http::StatusCode;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use weir_policy::{PolicyState, Rejection};

const HS_SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";
const DEMO_KEY_SHA256: &str = "c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c";

/// (algorithm, private key file, kid)
const FAMILIES: &[(Algorithm, &str, &str)] = &[
    (Algorithm::RS256, "rsa-a.pem", "rsa-a-256"),
    (Algorithm::RS384, "rsa-a.pem", "rsa-a-384"),
    (Algorithm::RS512, "rsa-a.pem", "rsa-a-512"),
    (Algorithm::PS256, "rsa-a.pem", "rsa-a-ps256"),
    (Algorithm::ES256, "ec-p256.pem", "ec-256"),
    (Algorithm::ES384, "ec-p384.pem", "ec-384"),
    (Algorithm::EdDSA, "ed25519.pem", "ed-1"),
];

fn config() -> String {
    let keys: Vec<Value> = FAMILIES
        .iter()
        .map(|(a, f, k)| public_jwk(*a, f, k))
        .collect();
    let jwks = json!({ "keys": keys });
    let confused = json!({ "keys": [public_jwk(Algorithm::RS256, "rsa-a.pem", "rsa-a")] });
    format!(
        r#"
auth:
  api_keys:
    - {{ name: demo, sha256: "{DEMO_KEY_SHA256}", scopes: [catalog:read] }}
  api_key_query: api_key
  jwt:
    - issuer: {ISSUER}
      consumer_namespace: main
      audiences: [{AUDIENCE}]
      jwks: {{ inline: {jwks} }}
      algorithms: [RS256, RS384, RS512, PS256, ES256, ES384, EdDSA]
      leeway: 30s
      forward_claims: {{ sub: x-user-id, tenant: x-tenant }}
    - issuer: https://hs.test
      consumer_namespace: hs
      audiences: [{AUDIENCE}]
      secret: "{HS_SECRET}"
      algorithms: [HS256]
    - issuer: https://confused.test
      consumer_namespace: confused
      audiences: [{AUDIENCE}]
      jwks: {{ inline: {confused} }}
      algorithms: [RS256, HS256]
    - issuer: https://pem.test
      consumer_namespace: pem
      audiences: [{AUDIENCE}]
      pem: ec-p256.pub.pem
      algorithms: [ES256]
routes:
  - name: open
  - name: jwt
    auth: {{ any_of: [jwt], scopes: [catalog:read] }}
  - name: jwt-fwd
    auth: {{ any_of: [jwt], forward_authorization: true }}
  - name: admin
    auth: {{ any_of: [jwt, api_key], scopes: [catalog:admin] }}
  - name: key
    auth: {{ any_of: [api_key] }}
  - name: optional
    auth: {{ any_of: [jwt, none] }}
"#
    )
}

struct Fixture {
    built: Built,
    state: PolicyState,
}

fn fixture() -> Fixture {
    let state = PolicyState::new();
    let built = build(&config(), &state);
    Fixture { built, state }
}

impl Fixture {
    async fn call(
        &self,
        route: &str,
        headers: &[(&str, &str)],
    ) -> (
        http::request::Parts,
        Result<weir_policy::Admitted, Rejection>,
    ) {
        let mut parts = request("GET", "/things?x=1", headers);
        let r = self
            .built
            .policies
            .check(self.built.route(route), &mut parts, PEER)
            .await;
        (parts, r)
    }

    async fn reason(&self, route: &str, token: &str) -> &'static str {
        let auth = bearer(token);
        match self.call(route, &[("authorization", &auth)]).await.1 {
            Ok(_) => "admitted",
            Err(r) => r.reason(),
        }
    }
}

#[tokio::test]
async fn every_algorithm_family_verifies() {
    let f = fixture();
    for (alg, file, kid) in FAMILIES {
        let token = mint(
            *alg,
            &signing_key(*alg, file),
            Some(kid),
            &claims(json!({})),
        );
        let auth = bearer(&token);
        let (parts, r) = f.call("jwt", &[("authorization", &auth)]).await;
        let admitted = r.unwrap_or_else(|e| panic!("{alg:?}: {}", e.reason()));
        let id = admitted.identity.expect("identity");
        assert_eq!(id.consumer.as_deref(), Some("jwt:main:alice"), "{alg:?}");
        assert_eq!(parts.headers["x-user-id"], "alice");
        assert!(
            parts.headers.get("authorization").is_none(),
            "Authorization is not forwarded by default"
        );
    }
    let hs = mint(
        Algorithm::HS256,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
        None,
        &claims(json!({"iss": "https://hs.test"})),
    );
    assert_eq!(f.reason("jwt", &hs).await, "admitted");
    let pem = mint(
        Algorithm::ES256,
        &signing_key(Algorithm::ES256, "ec-p256.pem"),
        None,
        &claims(json!({"iss": "https://pem.test"})),
    );
    assert_eq!(f.reason("jwt", &pem).await, "admitted");
    // Keys without a kid (PEM, secret) also verify tokens whose header names one.
    let pem_kid = mint(
        Algorithm::ES256,
        &signing_key(Algorithm::ES256, "ec-p256.pem"),
        Some("k7"),
        &claims(json!({"iss": "https://pem.test"})),
    );
    assert_eq!(f.reason("jwt", &pem_kid).await, "admitted");
    let hs_kid = mint(
        Algorithm::HS256,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
        Some("k8"),
        &claims(json!({"iss": "https://hs.test"})),
    );
    assert_eq!(f.reason("jwt", &hs_kid).await, "admitted");
}

#[tokio::test]
async fn time_claims_issuer_and_audience_are_checked() {
    let f = fixture();
    let key = signing_key(Algorithm::RS256, "rsa-a.pem");
    let t = |extra: Value| mint(Algorithm::RS256, &key, Some("rsa-a-256"), &claims(extra));
    assert_eq!(
        f.reason("jwt", &t(json!({"exp": now() - 120}))).await,
        "token_expired"
    );
    // Within the leeway: still fine.
    assert_eq!(
        f.reason("jwt", &t(json!({"exp": now() - 10}))).await,
        "admitted"
    );
    assert_eq!(
        f.reason("jwt", &t(json!({"exp": null}))).await,
        "missing_claim"
    );
    assert_eq!(
        f.reason("jwt", &t(json!({"nbf": now() + 120}))).await,
        "token_not_yet_valid"
    );
    assert_eq!(
        f.reason("jwt", &t(json!({"iat": now() + 120}))).await,
        "token_not_yet_valid"
    );
    assert_eq!(
        f.reason("jwt", &t(json!({"iss": "https://elsewhere.test"})))
            .await,
        "unknown_issuer"
    );
    assert_eq!(
        f.reason("jwt", &t(json!({"iss": null}))).await,
        "unknown_issuer"
    );
    assert_eq!(
        f.reason("jwt", &t(json!({"aud": "someone-else"}))).await,
        "wrong_audience"
    );
    assert_eq!(
        f.reason("jwt", &t(json!({"aud": ["x", AUDIENCE]}))).await,
        "admitted"
    );
}

#[tokio::test]
async fn forged_and_confused_tokens_are_rejected() {
    let f = fixture();
    // Signed by another key under a known kid.
    let other = signing_key(Algorithm::RS256, "rsa-b.pem");
    let wrong_key = mint(
        Algorithm::RS256,
        &other,
        Some("rsa-a-256"),
        &claims(json!({})),
    );
    assert_eq!(f.reason("jwt", &wrong_key).await, "bad_signature");
    // A kid nobody published.
    let unknown = mint(Algorithm::RS256, &other, Some("nope"), &claims(json!({})));
    assert_eq!(f.reason("jwt", &unknown).await, "unknown_kid");
    // alg: none, no signature.
    let none = raw_token(
        &json!({"alg": "none", "typ": "JWT"}),
        &claims(json!({})),
        b"",
    );
    assert_eq!(f.reason("jwt", &none).await, "alg_not_allowed");
    // HS256 "signed" with the RSA public key as the HMAC secret, against an
    // issuer whose allow-list has both RS256 and HS256: the RSA key must not
    // be used as an HMAC secret.
    let public_pem = read_key("rsa-a.pub.pem");
    let confused = mint(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        Some("rsa-a"),
        &claims(json!({"iss": "https://confused.test"})),
    );
    assert_eq!(f.reason("jwt", &confused).await, "alg_key_mismatch");
    let confused_nokid = mint(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        None,
        &claims(json!({"iss": "https://confused.test"})),
    );
    assert_eq!(f.reason("jwt", &confused_nokid).await, "alg_key_mismatch");
    // The same trick against the main issuer fails on the allow-list.
    let confused_main = mint(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        Some("rsa-a-256"),
        &claims(json!({})),
    );
    assert_eq!(f.reason("jwt", &confused_main).await, "alg_not_allowed");
    // An algorithm outside the issuer's list.
    let rs_for_hs = mint(
        Algorithm::RS256,
        &signing_key(Algorithm::RS256, "rsa-a.pem"),
        None,
        &claims(json!({"iss": "https://hs.test"})),
    );
    assert_eq!(f.reason("jwt", &rs_for_hs).await, "alg_not_allowed");
    // The header's alg swapped for another of the same key's family.
    let good = mint(
        Algorithm::RS256,
        &signing_key(Algorithm::RS256, "rsa-a.pem"),
        Some("rsa-a-256"),
        &claims(json!({})),
    );
    let mut segs: Vec<&str> = good.split('.').collect();
    let swapped_header = raw_token(
        &json!({"alg": "RS384", "kid": "rsa-a-256"}),
        &json!({}),
        b"",
    );
    segs[0] = swapped_header.split('.').next().unwrap();
    let swapped = segs.join(".");
    assert_ne!(f.reason("jwt", &swapped).await, "admitted");
    assert_eq!(f.reason("jwt", "not.a-token").await, "malformed_token");
}

#[tokio::test]
async fn failures_are_401_or_403_problems_with_challenge() {
    let f = fixture();
    let (_, r) = f.call("jwt", &[("x-request-id", "req-42")]).await;
    let rej = r.unwrap_err();
    assert_eq!(rej.reason(), "missing_credentials");
    let resp = rej.into_response();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"weir\", error=\"invalid_token\", error_description=\"credentials required\""
    );
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(resp.headers()["x-weir-error"], "unauthorized");
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["type"], "https://weir.dev/problems/unauthorized");
    assert_eq!(body["status"], 401);
    assert_eq!(body["request_id"], "req-42");

    // Valid token, missing scope: 403 insufficient_scope.
    let token = mint(
        Algorithm::RS256,
        &signing_key(Algorithm::RS256, "rsa-a.pem"),
        Some("rsa-a-256"),
        &claims(json!({})),
    );
    let auth = bearer(&token);
    let rej = f
        .call("admin", &[("authorization", &auth)])
        .await
        .1
        .unwrap_err();
    assert_eq!(rej.status(), StatusCode::FORBIDDEN);
    let challenge = rej.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"catalog:admin\""),
        "{challenge}"
    );
    assert!(!challenge.contains(&token));

    // Failures are counted by route and reason.
    let mut registry = prometheus_client::registry::Registry::default();
    f.state.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(r#"weir_auth_failures_total{route="jwt",reason="missing_credentials"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"weir_auth_failures_total{route="admin",reason="insufficient_scope"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn forged_identity_headers_are_stripped() {
    let f = fixture();
    let forged = [
        ("x-user-id", "admin"),
        ("x-weir-consumer", "root"),
        ("x-tenant", "other"),
    ];
    // A route without auth: the headers are simply gone.
    let (parts, r) = f.call("open", &forged).await;
    assert!(r.is_ok());
    for (h, _) in forged {
        assert!(parts.headers.get(h).is_none(), "{h} survived");
    }
    // An anonymous caller on an optional-auth route: gone too.
    let (parts, r) = f.call("optional", &forged).await;
    assert!(r.unwrap().identity.is_none());
    assert!(parts.headers.get("x-user-id").is_none());
    // An authenticated caller: replaced by the verified values.
    let token = mint(
        Algorithm::ES256,
        &signing_key(Algorithm::ES256, "ec-p256.pem"),
        Some("ec-256"),
        &claims(json!({"tenant": "acme"})),
    );
    let auth = bearer(&token);
    let mut headers = forged.to_vec();
    headers.push(("authorization", &auth));
    let (parts, r) = f.call("jwt-fwd", &headers).await;
    assert!(r.is_ok());
    assert_eq!(parts.headers["x-user-id"], "alice");
    assert_eq!(parts.headers["x-weir-consumer"], "jwt:main:alice");
    assert_eq!(parts.headers["x-tenant"], "acme");
    assert_eq!(parts.headers.get_all("x-user-id").iter().count(), 1);
    assert_eq!(
        parts.headers["authorization"],
        auth.as_str(),
        "forward_authorization keeps it"
    );
}

#[tokio::test]
async fn api_keys_from_header_or_query() {
    let f = fixture();
    let (parts, r) = f
        .call(
            "key",
            &[("x-api-key", "demo-key"), ("x-weir-consumer", "forged")],
        )
        .await;
    let id = r.unwrap().identity.unwrap();
    assert_eq!(id.consumer.as_deref(), Some("apikey:demo"));
    assert_eq!(parts.headers["x-weir-consumer"], "apikey:demo");
    assert!(
        parts.headers.get("x-api-key").is_none(),
        "the key is not forwarded"
    );

    let (_, r) = f.call("key", &[("x-api-key", "demo-kez")]).await;
    assert_eq!(r.unwrap_err().reason(), "unknown_api_key");

    let mut parts = request("GET", "/things?a=1&api_key=demo-key&b=2", &[]);
    let r = f
        .built
        .policies
        .check(f.built.route("key"), &mut parts, PEER)
        .await;
    assert!(r.is_ok());
    assert_eq!(parts.uri.to_string(), "/things?a=1&b=2");

    // Valid key without the scope.
    let (_, r) = f.call("admin", &[("x-api-key", "demo-key")]).await;
    assert_eq!(r.unwrap_err().reason(), "insufficient_scope");
    // A route that does not accept keys ignores the header (and does not
    // forward it: see credentials.rs).
    let (_, r) = f.call("jwt", &[("x-api-key", "demo-key")]).await;
    assert_eq!(r.unwrap_err().reason(), "missing_credentials");
}

#[test]
fn config_errors_name_their_field() {
    let errs = validate(
        r#"
auth:
  api_keys: [{ name: a, sha256: "zz" }]
  jwt:
    - issuer: https://x.test
      jwks: { file: missing.json }
      algorithms: [RS256, XX999]
    - issuer: https://y.test
      secret: short
      algorithms: [RS256]
rate_limits:
  policies:
    p: { rate: 0, per: 1s }
    q: { rate: 1, per: 1s, key: [bogus] }
routes:
  - name: r
    auth: { any_of: [jwt], scopes: [] }
    rate_limit: [nope]
    cors: { allow_origins: ["*"], allow_credentials: true }
"#,
    )
    .unwrap_err();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "auth.api_keys[0].sha256",
        "auth.jwt[0].algorithms[1]",
        "auth.jwt[0].jwks.file",
        "auth.jwt[1].algorithms",
        "auth.jwt[1].secret",
        "rate_limits.policies.p",
        "rate_limits.policies.q.key[0]",
        "routes[0].rate_limit[0]",
        "routes[0].cors.allow_credentials",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    // Unknown fields are errors.
    assert!(serde_norway::from_str::<weir_policy::config::AuthConfig>("api_kyes: []").is_err());
}

#[tokio::test]
async fn cors_preflight_is_answered_before_auth() {
    let state = PolicyState::new();
    let b = build(
        &format!(
            "{}\n  - name: web\n    auth: {{ any_of: [jwt] }}\n    cors: {{ allow_origins: [\"https://app.test\"], allow_methods: [GET, POST], allow_headers: [authorization], max_age: 1h }}\n",
            config().trim_end()
        ),
        &state,
    );
    let preflight = [
        ("origin", "https://app.test"),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "authorization"),
    ];
    let mut parts = request("OPTIONS", "/things", &preflight);
    let early = b
        .policies
        .preflight(b.route("web"), &parts)
        .expect("answered");
    assert_eq!(early.status(), StatusCode::NO_CONTENT);
    let rej = b
        .policies
        .check(b.route("web"), &mut parts, PEER)
        .await
        .unwrap_err();
    assert_eq!(rej.reason(), "cors_preflight");
    let resp = rej.into_response();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.test"
    );
    assert_eq!(resp.headers()["access-control-max-age"], "3600");
    // Not a preflight: no early answer; auth applies, and the 401 carries
    // the CORS headers so the browser can read it.
    let mut parts = request("GET", "/things", &[("origin", "https://app.test")]);
    assert!(b.policies.preflight(b.route("web"), &parts).is_none());
    let rej = b
        .policies
        .check(b.route("web"), &mut parts, PEER)
        .await
        .unwrap_err();
    assert_eq!(rej.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        rej.headers()["access-control-allow-origin"],
        "https://app.test"
    );
    // A route without CORS never answers preflights itself.
    let parts = request("OPTIONS", "/things", &preflight);
    assert!(b.policies.preflight(b.route("jwt"), &parts).is_none());
}

#[tokio::test]
async fn keys_file_and_default_route_auth() {
    let b = build(
        r#"
auth:
  api_keys_file: api-keys.yaml
  scopes_header: x-weir-scopes
  default: { any_of: [api_key], scopes: [files:read] }
routes:
  - name: inherits
  - name: explicit-open
    auth: { any_of: [none] }
"#,
        &PolicyState::new(),
    );
    let mut parts = request(
        "GET",
        "/",
        &[("x-api-key", "file-key"), ("x-weir-scopes", "admin")],
    );
    let id = b
        .policies
        .check(b.route("inherits"), &mut parts, PEER)
        .await
        .unwrap()
        .identity
        .unwrap();
    assert_eq!(id.consumer.as_deref(), Some("apikey:from-file"));
    assert_eq!(
        parts.headers["x-weir-scopes"], "files:read",
        "the forged scopes header is replaced"
    );
    let mut parts = request("GET", "/", &[]);
    let rej = b
        .policies
        .check(b.route("inherits"), &mut parts, PEER)
        .await
        .unwrap_err();
    assert_eq!(rej.reason(), "missing_credentials");
    let mut parts = request("GET", "/", &[("x-weir-scopes", "admin")]);
    assert!(
        b.policies
            .check(b.route("explicit-open"), &mut parts, PEER)
            .await
            .is_ok()
    );
    assert!(parts.headers.get("x-weir-scopes").is_none());
}

async fn check(b: &Built, key: &str) -> Result<Option<String>, Rejection> {
    let mut parts = request("GET", "/", &[("x-api-key", key)]);
    b.policies
        .check(b.route("key"), &mut parts, PEER)
        .await
        .map(|a| a.identity.and_then(|i| i.consumer))
}

/// Verified keys are cached per config generation: a reload that drops a key
/// refuses it on the next request, even right after it was accepted (and
/// cached) many times by the generation before.
#[tokio::test]
async fn a_reload_that_removes_an_api_key_refuses_it_at_once() {
    const FILE_KEY_SHA256: &str =
        "a0cc538968c3de95e887314617b79289de0f999e78c8f7eef949463a96055b52";
    let config = |keys: &str| {
        format!(
            "auth:\n  api_keys: [{keys}]\nroutes:\n  - name: key\n    auth: {{ any_of: [api_key] }}\n"
        )
    };
    let state = PolicyState::new();
    let both = format!(
        r#"{{ name: demo, sha256: "{DEMO_KEY_SHA256}" }}, {{ name: other, sha256: "{FILE_KEY_SHA256}" }}"#
    );
    let before = build(&config(&both), &state);
    for _ in 0..3 {
        assert_eq!(
            check(&before, "demo-key").await.unwrap().as_deref(),
            Some("apikey:demo")
        );
    }
    assert_eq!(
        check(&before, "demo-kex").await.unwrap_err().reason(),
        "unknown_api_key"
    );

    let after = build(
        &config(&format!(
            r#"{{ name: other, sha256: "{FILE_KEY_SHA256}" }}"#
        )),
        &state,
    );
    assert_eq!(
        check(&after, "demo-key").await.unwrap_err().reason(),
        "unknown_api_key",
        "the removed key is refused by the new generation"
    );
    assert_eq!(
        check(&after, "file-key").await.unwrap().as_deref(),
        Some("apikey:other")
    );
    // The old generation, still serving requests in flight, is unchanged.
    assert_eq!(
        check(&before, "demo-key").await.unwrap().as_deref(),
        Some("apikey:demo")
    );
}
