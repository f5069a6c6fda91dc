//! JWT verification as the gateway does it (`Policies::check` on a route with
//! `auth: { any_of: [jwt] }`), against two issuers: RS256 with the demo JWK
//! set, and HS256/HS384 with a shared secret.
//!
//! The first byte picks how the rest becomes a token: as raw text, or as a
//! header and a payload (split at the first NUL) that the target signs with
//! the real key, so the claim checks behind the signature are reached too.
//!
//! Checks, on every input: no panic; the `Authorization` header never reaches
//! the upstream; identity headers a client sent never survive. When a token
//! is admitted: its `alg` is one its issuer allows (never `none`), the
//! signature verifies with that issuer's key, `kid` names a known key, `exp`
//! is present and not past (leeway 30 s), `nbf` and `iat` are not in the
//! future, `iss` is the issuer's and `aud` holds the audience it requires.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Request};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use weir_fuzz::{DEMO_JWKS, DEMO_PRIVATE_PEM, fresh_peer, runtime};
use weir_policy::config::{AuthConfig, RateLimitsConfig, RouteAuthConfig};
use weir_policy::{Policies, PolicyState, RoutePolicy, RouteRef};

const DEMO_ISS: &str = "https://demo.weir.dev";
const HS_ISS: &str = "https://hs.weir.test";
/// 48 bytes: RFC 7518 §3.2 asks HS384 for a key at least as long as its hash.
const HS_SECRET: &str = "weir-fuzz-shared-secret-0123456789abcdef-0123456";
const LEEWAY: u64 = 30;
const FORGED: &str = "forged-by-client";

struct Fixture {
    policies: Policies,
    route: RoutePolicy,
    rsa: EncodingKey,
    rsa_public: DecodingKey,
    hmac: EncodingKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let jwks: Value = serde_json::from_str(DEMO_JWKS).expect("demo JWKS");
        let auth: AuthConfig = serde_json::from_value(json!({
            "jwt": [
                {
                    "issuer": DEMO_ISS,
                    "audiences": ["weir-demo"],
                    "jwks": { "inline": jwks },
                    "algorithms": ["RS256"],
                    "leeway": "30s",
                    "forward_claims": { "sub": "x-user-id" },
                    "consumer_namespace": "demo",
                },
                {
                    "issuer": HS_ISS,
                    "secret": HS_SECRET,
                    "algorithms": ["HS256", "HS384"],
                    "leeway": "30s",
                    "consumer_namespace": "hs",
                },
            ],
            "scopes_header": "x-weir-scopes",
        }))
        .expect("auth config");
        let limits: RateLimitsConfig = serde_json::from_value(json!({})).expect("limits");
        let _guard = runtime().enter();
        let policies = Policies::build(
            &auth,
            &limits,
            std::path::Path::new("."),
            &PolicyState::new(),
        )
        .expect("policies");
        let route_auth: RouteAuthConfig =
            serde_json::from_value(json!({ "any_of": ["jwt"] })).expect("route auth");
        let route = policies
            .route(RouteRef {
                name: "r",
                path: "routes[0]",
                auth: Some(&route_auth),
                rate_limit: Some(&[]),
                cors: None,
            })
            .expect("route policy");
        let rsa_public = jwks["keys"][0].clone();
        Fixture {
            policies,
            route,
            rsa: EncodingKey::from_rsa_pem(DEMO_PRIVATE_PEM).expect("demo key"),
            rsa_public: DecodingKey::from_jwk(&serde_json::from_value(rsa_public).expect("jwk"))
                .expect("demo public key"),
            hmac: EncodingKey::from_secret(HS_SECRET.as_bytes()),
        }
    })
}

/// Builds the token an input stands for.
fn token(data: &[u8], f: &Fixture) -> Option<String> {
    let (&mode, rest) = data.split_first()?;
    // Raw text a quarter of the time; signing with RSA is slow, so it gets
    // one input in eight and HMAC the rest.
    let mode = match mode % 8 {
        0 | 4 => 0,
        2 => 2,
        _ => 1,
    };
    if mode == 0 {
        return String::from_utf8(rest.to_vec()).ok();
    }
    let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let header = &rest[..split];
    let payload = rest.get(split + 1..).unwrap_or_default();
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let claimed = serde_json::from_slice::<Value>(header)
        .ok()
        .and_then(|h| h.get("alg")?.as_str()?.parse::<Algorithm>().ok());
    let (key, alg) = match (mode, claimed) {
        (1, Some(a @ (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))) => (&f.hmac, a),
        (1, _) => (&f.hmac, Algorithm::HS256),
        _ => (&f.rsa, Algorithm::RS256),
    };
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).ok()?;
    Some(format!("{message}.{sig}"))
}

fn part(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(seg)
        .expect("admitted token part is base64url");
    serde_json::from_slice(&bytes).expect("admitted token part is JSON")
}

/// What must hold of a token the gateway let through.
fn check_admitted(token: &str, f: &Fixture) {
    // The gateway trims the credential after `Bearer `.
    let token = token.trim();
    let header = part(token, 0);
    let claims = part(token, 1);
    let alg_name = header["alg"].as_str().expect("alg is a string");
    // RFC 7515 §4.1.11: Weir understands no critical extension.
    assert!(header.get("crit").is_none(), "token with crit admitted");
    let iss = claims["iss"].as_str().expect("iss is a string");
    let (allowed, key): (&[&str], DecodingKey) = match iss {
        DEMO_ISS => (&["RS256"], f.rsa_public.clone()),
        HS_ISS => (
            &["HS256", "HS384"],
            DecodingKey::from_secret(HS_SECRET.as_bytes()),
        ),
        other => panic!("token of unknown issuer {other:?} admitted"),
    };
    assert!(
        allowed.contains(&alg_name),
        "alg {alg_name} admitted for {iss}"
    );
    let alg: Algorithm = alg_name.parse().expect("allowed alg parses");
    let (message, sig) = token.rsplit_once('.').expect("three parts");
    assert!(
        jsonwebtoken::crypto::verify(sig, message.as_bytes(), &key, alg).unwrap_or(false),
        "signature does not verify"
    );
    if iss == DEMO_ISS {
        if let Some(kid) = header.get("kid") {
            assert_eq!(kid, "demo-1", "unknown kid admitted");
        }
        let aud_ok = match &claims["aud"] {
            Value::String(a) => a == "weir-demo",
            Value::Array(a) => a.iter().any(|v| v == "weir-demo"),
            _ => false,
        };
        assert!(aud_ok, "aud {:?} admitted", claims["aud"]);
    }
    let now = jsonwebtoken::get_current_timestamp() as f64;
    let leeway = LEEWAY as f64;
    let exp = claims["exp"].as_f64().expect("exp is required");
    assert!(
        exp + leeway + 2.0 >= now,
        "expired token admitted (exp {exp})"
    );
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().expect("nbf is a number");
        assert!(
            nbf <= now + leeway,
            "token not yet valid admitted (nbf {nbf})"
        );
    }
    if let Some(iat) = claims.get("iat") {
        let iat = iat.as_f64().expect("iat is a number");
        assert!(
            iat <= now + leeway,
            "token issued in the future admitted (iat {iat})"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some(token) = token(data, f) else {
        return;
    };
    let Ok(authorization) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return;
    };
    let (mut parts, ()) = Request::builder()
        .uri("/orders")
        .header("authorization", authorization)
        .header("x-weir-consumer", FORGED)
        .header("x-user-id", FORGED)
        .header("x-weir-scopes", FORGED)
        .body(())
        .expect("request")
        .into_parts();
    let peer = fresh_peer();
    let result = runtime().block_on(f.policies.check(&f.route, &mut parts, peer));
    assert!(
        !parts.headers.contains_key("authorization"),
        "the credential would reach the upstream"
    );
    for name in ["x-weir-consumer", "x-user-id", "x-weir-scopes"] {
        for v in parts.headers.get_all(name) {
            assert_ne!(v, FORGED, "a client-sent {name} would reach the upstream");
        }
    }
    if let Ok(admitted) = result {
        assert!(
            admitted.identity.is_some(),
            "a jwt-only route admitted no identity"
        );
        check_admitted(&token, f);
    }
});
