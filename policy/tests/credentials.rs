//! What reaches the upstream: only credentials the route verified (and
//! chose to forward), identity headers exactly as the gateway set them, and
//! consumers namespaced by how they authenticated.

mod common;

use common::*;
use http::request::Parts;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use weir_policy::{PolicyState, Rejection};

const DEMO_KEY_SHA256: &str = "c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c";
const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";

fn config(global_forward: bool) -> String {
    format!(
        r#"
auth:
  api_keys:
    - {{ name: demo, sha256: "{DEMO_KEY_SHA256}", scopes: [read] }}
  api_key_query: api_key
  scopes_header: x-weir-scopes
  strip_headers: [x-internal-role]
  forward_unused_credentials: {global_forward}
  jwt:
    - issuer: {ISSUER}
      audiences: [{AUDIENCE}]
      secret: "{SECRET}"
      algorithms: [HS256]
      forward_claims: {{ sub: x-user-id, tenant: x-tenant }}
rate_limits:
  policies:
    per-consumer: {{ rate: 1, per: 1h, burst: 1, key: [consumer] }}
routes:
  - {{ name: key, auth: {{ any_of: [api_key] }} }}
  - {{ name: jwt, auth: {{ any_of: [jwt] }} }}
  - {{ name: either, auth: {{ any_of: [jwt, api_key] }} }}
  - {{ name: open }}
  - {{ name: key-fwd, auth: {{ any_of: [api_key], forward_unused_credentials: true }} }}
  - {{ name: open-nofwd, auth: {{ any_of: [none], forward_unused_credentials: false }} }}
  - {{ name: jwt-keep, auth: {{ any_of: [jwt], forward_authorization: true }} }}
  - {{ name: limited, auth: {{ any_of: [jwt, api_key] }}, rate_limit: [per-consumer] }}
"#
    )
}

fn token(sub: &str) -> String {
    mint(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        None,
        &claims(json!({ "sub": sub })),
    )
}

async fn call(
    b: &Built,
    route: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> (Parts, Result<weir_policy::Admitted, Rejection>) {
    let mut parts = request("GET", uri, headers);
    let r = b.policies.check(b.route(route), &mut parts, PEER).await;
    (parts, r)
}

#[tokio::test]
async fn credentials_a_route_did_not_verify_are_not_forwarded() {
    let b = build(&config(false), &PolicyState::new());
    let bearer_junk = bearer("not-checked-by-this-route");
    let good = bearer(&token("alice"));

    // An API-key route does not forward a bearer token it never checked.
    let (parts, r) = call(
        &b,
        "key",
        "/",
        &[("x-api-key", "demo-key"), ("authorization", &bearer_junk)],
    )
    .await;
    r.unwrap();
    assert!(parts.headers.get("authorization").is_none());
    assert!(parts.headers.get("x-api-key").is_none());

    // A JWT route does not forward an API key it never checked (header or query).
    let (parts, r) = call(
        &b,
        "jwt",
        "/p?api_key=junk&x=1&api_key=more",
        &[("authorization", &good), ("x-api-key", "junk")],
    )
    .await;
    r.unwrap();
    assert!(parts.headers.get("x-api-key").is_none());
    assert!(parts.headers.get("authorization").is_none());
    assert_eq!(parts.uri.to_string(), "/p?x=1");

    // Both offered: the first method's credential is checked, the other dropped.
    let (parts, r) = call(
        &b,
        "either",
        "/",
        &[("authorization", &good), ("x-api-key", "junk")],
    )
    .await;
    assert_eq!(
        r.unwrap().identity.unwrap().consumer.as_deref(),
        Some("jwt:alice")
    );
    assert!(parts.headers.get("x-api-key").is_none());

    // A route without auth verified nothing: nothing is forwarded.
    let (parts, r) = call(
        &b,
        "open",
        "/?api_key=k",
        &[("authorization", "Basic dTpw"), ("x-api-key", "k")],
    )
    .await;
    r.unwrap();
    assert!(parts.headers.get("authorization").is_none());
    assert!(parts.headers.get("x-api-key").is_none());
    assert_eq!(parts.uri.to_string(), "/");

    // forward_authorization keeps the verified token, still not the unused key.
    let (parts, r) = call(
        &b,
        "jwt-keep",
        "/",
        &[("authorization", &good), ("x-api-key", "junk")],
    )
    .await;
    r.unwrap();
    assert_eq!(parts.headers["authorization"], good.as_str());
    assert!(parts.headers.get("x-api-key").is_none());
}

#[tokio::test]
async fn forwarding_unused_credentials_is_configurable() {
    // Per route.
    let b = build(&config(false), &PolicyState::new());
    let (parts, r) = call(
        &b,
        "key-fwd",
        "/",
        &[
            ("x-api-key", "demo-key"),
            ("authorization", "Bearer upstream"),
        ],
    )
    .await;
    r.unwrap();
    assert_eq!(parts.headers["authorization"], "Bearer upstream");
    assert!(
        parts.headers.get("x-api-key").is_none(),
        "the verified key itself is never forwarded"
    );
    // Globally, with a route opting out.
    let b = build(&config(true), &PolicyState::new());
    let (parts, r) = call(
        &b,
        "open",
        "/",
        &[("authorization", "Bearer upstream"), ("x-api-key", "k")],
    )
    .await;
    r.unwrap();
    assert_eq!(parts.headers["authorization"], "Bearer upstream");
    assert_eq!(parts.headers["x-api-key"], "k");
    let (parts, r) = call(
        &b,
        "open-nofwd",
        "/",
        &[("authorization", "Bearer upstream"), ("x-api-key", "k")],
    )
    .await;
    r.unwrap();
    assert!(parts.headers.get("authorization").is_none());
    assert!(parts.headers.get("x-api-key").is_none());
}

#[tokio::test]
async fn two_values_of_a_credential_header_are_refused() {
    let b = build(&config(false), &PolicyState::new());
    let good = bearer(&token("alice"));
    for (route, headers) in [
        (
            "jwt",
            [
                ("authorization", good.as_str()),
                ("authorization", "Bearer x"),
            ],
        ),
        ("key", [("x-api-key", "demo-key"), ("x-api-key", "other")]),
    ] {
        let (_, r) = call(&b, route, "/", &headers).await;
        assert_eq!(r.unwrap_err().reason(), "ambiguous_credentials", "{route}");
    }
}

#[tokio::test]
async fn consumers_are_namespaced_for_the_upstream_and_for_limits() {
    let b = build(&config(false), &PolicyState::new());
    let (parts, r) = call(&b, "limited", "/", &[("x-api-key", "demo-key")]).await;
    r.unwrap();
    assert_eq!(parts.headers["x-weir-consumer"], "apikey:demo");
    // A JWT whose subject imitates the API key's consumer is someone else,
    // upstream and in the per-consumer limit (burst 1, already spent by
    // the key).
    for sub in ["demo", "apikey:demo"] {
        let auth = bearer(&token(sub));
        let (parts, r) = call(&b, "limited", "/", &[("authorization", &auth)]).await;
        r.unwrap_or_else(|e| panic!("{sub}: {}", e.reason()));
        assert_eq!(
            parts.headers["x-weir-consumer"],
            format!("jwt:{sub}").as_str()
        );
        assert_eq!(parts.headers["x-user-id"], sub, "forwarded claims stay raw");
    }
    let (_, r) = call(&b, "limited", "/", &[("x-api-key", "demo-key")]).await;
    assert_eq!(r.unwrap_err().reason(), "rate_limited");
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_upstream() {
    let b = build(&config(false), &PolicyState::new());
    let forged = [
        ("X-Weir-Consumer", "apikey:admin"),
        ("x-weir-consumer", "second"),
        ("X-WEIR-SCOPES", "admin"),
        ("x-user-id", "root"),
        ("x-tenant", "other"),
        ("x-internal-role", "admin"),
    ];
    let names = [
        "x-weir-consumer",
        "x-weir-scopes",
        "x-user-id",
        "x-tenant",
        "x-internal-role",
    ];
    // Unauthenticated, on every kind of route.
    for route in ["open", "open-nofwd", "jwt"] {
        let (parts, _) = call(&b, route, "/", &forged).await;
        for n in names {
            assert!(parts.headers.get(n).is_none(), "{route}: {n} survived");
        }
    }
    // Authenticated: exactly the gateway's values, once; a claim the token
    // lacks (tenant) is absent rather than the client's.
    let auth = bearer(&token("alice"));
    let mut headers = forged.to_vec();
    headers.push(("authorization", &auth));
    let (parts, r) = call(&b, "jwt", "/", &headers).await;
    r.unwrap();
    assert_eq!(parts.headers["x-weir-consumer"], "jwt:alice");
    assert_eq!(parts.headers.get_all("x-weir-consumer").iter().count(), 1);
    assert_eq!(parts.headers["x-weir-scopes"], "catalog:read");
    assert_eq!(parts.headers["x-user-id"], "alice");
    assert!(parts.headers.get("x-tenant").is_none());
    assert!(parts.headers.get("x-internal-role").is_none());
}

#[test]
fn several_issuers_need_distinct_consumer_namespaces() {
    let provider = |iss: &str, ns: &str| {
        format!("    - {{ issuer: {iss}, secret: \"{SECRET}\", algorithms: [HS256]{ns} }}\n")
    };
    let yaml = |a: &str, b: &str| {
        format!(
            "auth:\n  jwt:\n{}{}",
            provider("https://a.test", a),
            provider("https://b.test", b)
        )
    };
    let paths = |y: String| -> Vec<String> {
        validate(&y)
            .err()
            .map(|e| e.iter().map(|e| e.path.clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        paths(yaml("", ", consumer_namespace: b")),
        ["auth.jwt[0].consumer_namespace"]
    );
    assert_eq!(
        paths(yaml(", consumer_namespace: x", ", consumer_namespace: x")),
        ["auth.jwt[1].consumer_namespace"]
    );
    assert_eq!(
        paths(yaml(
            ", consumer_namespace: \"a:b\"",
            ", consumer_namespace: b"
        )),
        ["auth.jwt[0].consumer_namespace"]
    );
    assert!(paths(yaml(", consumer_namespace: a", ", consumer_namespace: b")).is_empty());
}
