//! JWK sets as an issuer could publish them: the input, when it is JSON, is
//! the `jwks.inline` of an issuer allowing RS256, PS256, ES256, ES384 and
//! EdDSA; the set is parsed as `gateway validate` does
//! (`weir_policy::config::validate`) and as a build does (`Policies::build`).
//!
//! Checks: no panic; validation and build agree on accepting the set; and a
//! token signed with the demo RSA key is admitted only if the set holds that
//! key (same modulus and exponent, whatever their encoding) usable for it: no
//! pinned `alg` other than RS256, not an encryption key (`use: enc`), and a `kid` that fits
//! the token's. Unusable keys in a set are skipped, never fatal.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Request};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use weir_fuzz::{DEMO_JWKS, DEMO_PRIVATE_PEM, fresh_peer, runtime};
use weir_policy::config::{AuthConfig, RateLimitsConfig, RouteAuthConfig};
use weir_policy::{Policies, PolicyState, RouteRef};

const ISS: &str = "https://demo.weir.dev";

struct Fixture {
    /// (token, its kid)
    tokens: Vec<(String, Option<&'static str>)>,
    demo_n: Vec<u8>,
    demo_e: Vec<u8>,
    state: PolicyState,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = EncodingKey::from_rsa_pem(DEMO_PRIVATE_PEM).expect("demo key");
        let exp = jsonwebtoken::get_current_timestamp() + 10 * 365 * 24 * 3600;
        let claims = json!({ "iss": ISS, "sub": "fuzz", "exp": exp });
        let tokens = [Some("demo-1"), None, Some("other")]
            .into_iter()
            .map(|kid| {
                let mut h = Header::new(Algorithm::RS256);
                h.kid = kid.map(str::to_owned);
                (jsonwebtoken::encode(&h, &claims, &key).expect("token"), kid)
            })
            .collect();
        let jwks: Value = serde_json::from_str(DEMO_JWKS).expect("demo JWKS");
        Fixture {
            tokens,
            demo_n: integer(&jwks["keys"][0]["n"]).expect("demo n"),
            demo_e: integer(&jwks["keys"][0]["e"]).expect("demo e"),
            state: PolicyState::new(),
        }
    })
}

/// A JWK big integer without its leading zero bytes.
fn integer(v: &Value) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(v.as_str()?).ok()?;
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    Some(bytes[start..].to_vec())
}

/// Whether `jwks` holds the demo public key in a form usable for an RS256
/// token with this `kid`.
fn holds_demo_key(jwks: &Value, kid: Option<&str>, f: &Fixture) -> bool {
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return false;
    };
    keys.iter().any(|k| {
        k.get("kty").and_then(Value::as_str) == Some("RSA")
            && integer(&k["n"]).as_ref() == Some(&f.demo_n)
            && integer(&k["e"]).as_ref() == Some(&f.demo_e)
            && k.get("alg").is_none_or(|a| a == "RS256")
            && k.get("use").is_none_or(|u| u != "enc")
            && match (kid, k.get("kid")) {
                (Some(want), Some(have)) => have == want,
                _ => true,
            }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(jwks) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let f = fixture();
    let Ok(auth) = serde_json::from_value::<AuthConfig>(json!({
        "jwt": [{
            "issuer": ISS,
            "jwks": { "inline": jwks },
            "algorithms": ["RS256", "PS256", "ES256", "ES384", "EdDSA"],
        }],
    })) else {
        return;
    };
    let limits: RateLimitsConfig = serde_json::from_value(json!({})).expect("limits");
    let base = std::path::Path::new(".");
    let validated = weir_policy::config::validate(&auth, &limits, base, []);
    let built = {
        let _guard = runtime().enter();
        Policies::build(&auth, &limits, base, &f.state)
    };
    assert_eq!(
        validated.is_ok(),
        built.is_ok(),
        "validate and build disagree: {:?} / {:?}",
        validated.as_ref().err().map(ToString::to_string),
        built.as_ref().err().map(ToString::to_string),
    );
    let Ok(policies) = built else {
        return;
    };
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
    for (token, kid) in &f.tokens {
        let (mut parts, ()) = Request::builder()
            .uri("/")
            .header(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
            )
            .body(())
            .expect("request")
            .into_parts();
        let peer = fresh_peer();
        let admitted = runtime()
            .block_on(policies.check(&route, &mut parts, peer))
            .is_ok();
        if admitted {
            assert!(
                holds_demo_key(&jwks, *kid, f),
                "a token with kid {kid:?} verified against a set without its key"
            );
        }
    }
});
