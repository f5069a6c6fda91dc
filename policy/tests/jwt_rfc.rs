//! JWT checks as RFC 7515 (JWS), RFC 7519 (JWT) and RFC 8725 (JWT BCP) ask,
//! one test per point; `docs/policies.md` lists them.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use weir_policy::PolicyState;

const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";

fn config() -> String {
    let jwks = json!({ "keys": [public_jwk(Algorithm::RS256, "rsa-a.pem", "a")] });
    format!(
        r#"
auth:
  failure_limit: {{ enabled: false }}
  jwt:
    - issuer: {ISSUER}
      consumer_namespace: main
      audiences: [{AUDIENCE}]
      jwks: {{ inline: {jwks} }}
      algorithms: [RS256]
    - issuer: https://typed.test
      consumer_namespace: typed
      audiences: [{AUDIENCE}]
      typ: at+jwt
      secret: "{SECRET}"
      algorithms: [HS256]
    - issuer: https://noaud.test
      consumer_namespace: noaud
      secret: "{SECRET}"
      algorithms: [HS256]
routes:
  - name: r
    auth: {{ any_of: [jwt] }}
"#
    )
}

/// Signs the exact header and payload text given (so duplicates and odd
/// members survive) with rsa-a, RS256.
fn signed_raw(header: &str, payload: &str) -> String {
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = jsonwebtoken::crypto::sign(
        msg.as_bytes(),
        &signing_key(Algorithm::RS256, "rsa-a.pem"),
        Algorithm::RS256,
    )
    .unwrap();
    format!("{msg}.{sig}")
}

/// A properly signed RS256 token with extra header members and claims.
fn rs(header_extra: Value, claim_extra: Value) -> String {
    let mut header = json!({"alg": "RS256", "typ": "JWT", "kid": "a"});
    for (k, v) in header_extra.as_object().unwrap() {
        header[k] = v.clone();
    }
    signed_raw(&header.to_string(), &claims(claim_extra).to_string())
}

fn hs(iss: &str, typ: Option<&str>, extra: Value) -> String {
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.typ = typ.map(str::to_owned);
    let mut c = claims(extra);
    c["iss"] = iss.into();
    jsonwebtoken::encode(&header, &c, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

async fn reason(b: &Built, token: &str) -> &'static str {
    let auth = bearer(token);
    let mut parts = request("GET", "/", &[("authorization", &auth)]);
    match b.policies.check(b.route("r"), &mut parts, PEER).await {
        Ok(_) => "admitted",
        Err(r) => r.reason(),
    }
}

fn built() -> Built {
    build(&config(), &PolicyState::new())
}

#[tokio::test]
async fn baseline_token_is_admitted() {
    let b = built();
    assert_eq!(reason(&b, &rs(json!({}), json!({}))).await, "admitted");
}

/// RFC 7515 §4.1.11: a `crit` the recipient does not understand invalidates
/// the JWS; Weir understands no extension (not even RFC 7797's `b64`).
#[tokio::test]
async fn crit_is_rejected() {
    let b = built();
    for crit in [
        json!({"crit": ["exp"], "exp": 1}),
        json!({"crit": ["b64"], "b64": false}),
        json!({"crit": []}),
    ] {
        assert_eq!(
            reason(&b, &rs(crit, json!({}))).await,
            "crit_not_understood"
        );
    }
}

/// RFC 7515 §4 / RFC 7519 §4: member names must be unique; Weir rejects
/// duplicates instead of picking one.
#[tokio::test]
async fn duplicate_header_or_claim_names_are_rejected() {
    let b = built();
    let payload = claims(json!({})).to_string();
    let dup_header = r#"{"alg":"RS256","kid":"a","alg":"RS256"}"#;
    assert_eq!(
        reason(&b, &signed_raw(dup_header, &payload)).await,
        "duplicate_name"
    );
    let dup_claim = payload.replacen('{', r#"{"sub":"mallory","#, 1);
    assert_eq!(
        reason(&b, &signed_raw(r#"{"alg":"RS256","kid":"a"}"#, &dup_claim)).await,
        "duplicate_name"
    );
}

/// RFC 8725 §3.11 explicit typing, checked where configured; `typ` compares
/// case-insensitively with `application/` optional (RFC 7515 §4.1.9).
#[tokio::test]
async fn typ_is_checked_where_configured() {
    let b = built();
    for ok in ["at+jwt", "AT+JWT", "application/at+jwt"] {
        assert_eq!(
            reason(&b, &hs("https://typed.test", Some(ok), json!({}))).await,
            "admitted",
            "{ok}"
        );
    }
    for bad in [Some("JWT"), None] {
        assert_eq!(
            reason(&b, &hs("https://typed.test", bad, json!({}))).await,
            "wrong_type"
        );
    }
    // Not configured: any typ.
    assert_eq!(
        reason(&b, &rs(json!({"typ": "whatever"}), json!({}))).await,
        "admitted"
    );
}

/// RFC 7519 §5.2 / RFC 8725 §2.8: nested JWTs, JWEs and compressed tokens
/// are not accepted.
#[tokio::test]
async fn nested_encrypted_and_compressed_tokens_are_rejected() {
    let b = built();
    assert_eq!(
        reason(&b, &rs(json!({"cty": "JWT"}), json!({}))).await,
        "unsupported_token"
    );
    assert_eq!(
        reason(&b, &rs(json!({"cty": "application/jwt"}), json!({}))).await,
        "unsupported_token"
    );
    assert_eq!(
        reason(&b, &rs(json!({"zip": "DEF"}), json!({}))).await,
        "unsupported_token"
    );
    assert_eq!(
        reason(&b, "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d").await,
        "unsupported_token"
    );
}

/// Header parameters that carry or point at keys are never used: a token
/// signed by the attacker's own key, which it embeds or links, fails.
#[tokio::test]
async fn jwk_jku_x5u_x5c_headers_are_ignored() {
    let b = built();
    let attacker = public_jwk(Algorithm::RS256, "rsa-b.pem", "a");
    let header = json!({"alg": "RS256", "kid": "a", "jwk": attacker, "jku": "http://127.0.0.1:9/jwks", "x5u": "http://127.0.0.1:9/x5u", "x5c": ["MIIB"]});
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    let sig = jsonwebtoken::crypto::sign(
        msg.as_bytes(),
        &signing_key(Algorithm::RS256, "rsa-b.pem"),
        Algorithm::RS256,
    )
    .unwrap();
    assert_eq!(reason(&b, &format!("{msg}.{sig}")).await, "bad_signature");
    // The same headers on a token signed by the real key change nothing.
    let header_only = json!({"jwk": attacker, "jku": "http://127.0.0.1:9/jwks"});
    assert_eq!(reason(&b, &rs(header_only, json!({}))).await, "admitted");
}

/// Oversized tokens are refused before any decoding.
#[tokio::test]
async fn oversized_tokens_are_rejected() {
    let b = built();
    let big = rs(json!({}), json!({"pad": "x".repeat(20_000)}));
    assert_eq!(reason(&b, &big).await, "token_too_large");
}

/// RFC 7519 §4.1.4-4.1.6: NumericDates may carry fractions; `iat` must be a
/// number, not in the future (beyond the leeway).
#[tokio::test]
async fn numeric_dates() {
    let b = built();
    let n = now() as f64;
    assert_eq!(
        reason(
            &b,
            &rs(json!({}), json!({"iat": n - 0.5, "exp": n + 600.5}))
        )
        .await,
        "admitted"
    );
    assert_eq!(
        reason(&b, &rs(json!({}), json!({"iat": "yesterday"}))).await,
        "invalid_claim"
    );
    assert_eq!(
        reason(&b, &rs(json!({}), json!({"exp": "tomorrow"}))).await,
        "invalid_claim"
    );
    assert_eq!(
        reason(&b, &rs(json!({}), json!({"iat": n + 300.0}))).await,
        "token_not_yet_valid"
    );
}

/// RFC 7519 §4.1.1-4.1.3: `iss` and `sub` are strings; `aud` names us, and a
/// token naming an audience is refused by an issuer configured with none.
#[tokio::test]
async fn iss_sub_and_aud() {
    let b = built();
    assert_eq!(
        reason(&b, &rs(json!({}), json!({"iss": [ISSUER]}))).await,
        "invalid_claim"
    );
    assert_eq!(
        reason(&b, &rs(json!({}), json!({"sub": 42}))).await,
        "invalid_claim"
    );
    assert_eq!(
        reason(&b, &rs(json!({}), json!({"iss": format!("{ISSUER}/")}))).await,
        "unknown_issuer"
    );
    assert_eq!(
        reason(&b, &rs(json!({}), json!({"aud": format!("{AUDIENCE}x")}))).await,
        "wrong_audience"
    );
    assert_eq!(
        reason(&b, &rs(json!({}), json!({"aud": null}))).await,
        "missing_claim"
    );
    assert_eq!(
        reason(&b, &hs("https://noaud.test", None, json!({}))).await,
        "wrong_audience"
    );
    assert_eq!(
        reason(&b, &hs("https://noaud.test", None, json!({"aud": null}))).await,
        "admitted"
    );
}

/// Header members must have the types the RFCs give them.
#[tokio::test]
async fn header_member_types() {
    let b = built();
    assert_eq!(
        reason(&b, &rs(json!({"kid": 7}), json!({}))).await,
        "malformed_token"
    );
    assert_eq!(
        reason(&b, &rs(json!({"typ": ["JWT"]}), json!({}))).await,
        "malformed_token"
    );
}

/// RFC 7517 §4.2/4.3: only signature keys verify; RFC 7518 §3.3: RSA keys
/// of at least 2048 bits; §3.2: HMAC keys at least as long as the hash.
#[test]
fn unusable_keys_are_refused_at_load() {
    let key = |extra: Value| {
        let mut k = public_jwk(Algorithm::RS256, "rsa-a.pem", "a");
        for (n, v) in extra.as_object().unwrap() {
            k[n] = v.clone();
        }
        k
    };
    let jwks_errs = |k: Value| {
        let jwks = json!({ "keys": [k] });
        validate(&format!(
            "auth:\n  jwt:\n    - {{ issuer: i, jwks: {{ inline: {jwks} }}, algorithms: [RS256] }}\n"
        ))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    assert!(jwks_errs(key(json!({}))).is_empty());
    assert!(jwks_errs(key(json!({"use": "sig", "key_ops": ["verify"]}))).is_empty());
    assert!(jwks_errs(key(json!({"key_ops": ["encrypt"]}))).contains("key_ops"));
    assert!(
        jwks_errs(key(json!({"use": "sig", "key_ops": ["verify", "encrypt"]})))
            .contains("contradicts")
    );
    assert!(jwks_errs(key(json!({"use": "enc"}))).contains("enc"));
    assert!(jwks_errs(public_jwk(Algorithm::RS256, "rsa-1024.pem", "s")).contains("1024 bits"));

    let pem_errs = |file: &str| {
        validate(&format!(
            "auth:\n  jwt:\n    - {{ issuer: i, pem: {file}, algorithms: [RS256] }}\n"
        ))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    assert!(pem_errs("rsa-a.pub.pem").is_empty());
    assert!(pem_errs("rsa-a.pkcs1.pub.pem").is_empty());
    assert!(pem_errs("rsa-1024.pub.pem").contains("1024 bits"));
    assert!(pem_errs("rsa-1024.pkcs1.pub.pem").contains("1024 bits"));

    let hs_errs = |alg: &str, len: usize| {
        validate(&format!(
            "auth:\n  jwt:\n    - {{ issuer: i, secret: \"{}\", algorithms: [{alg}] }}\n",
            "k".repeat(len)
        ))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    assert!(hs_errs("HS256", 32).is_empty());
    assert!(hs_errs("HS384", 32).contains("48 bytes"));
    assert!(hs_errs("HS512", 63).contains("64 bytes"));
    assert!(hs_errs("HS512", 64).is_empty());
}

/// Leeway absorbs clock skew; a large one would quietly extend every token.
#[test]
fn leeway_is_bounded() {
    let errs = validate(&format!(
        "auth:\n  jwt:\n    - {{ issuer: i, secret: \"{SECRET}\", algorithms: [HS256], leeway: 1h }}\n"
    ))
    .unwrap_err();
    assert!(
        errs.iter().any(|e| e.path == "auth.jwt[0].leeway"),
        "{errs}"
    );
}
