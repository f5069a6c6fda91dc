//! Shared helpers: fixed test keys, token minting, config from YAML, requests.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use http::request::Parts;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Value, json};
use weir_policy::config::{AuthConfig, CorsConfig, RateLimitsConfig, RouteAuthConfig};
use weir_policy::{Policies, PolicyState, RoutePolicy, RouteRef};

pub const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "weir-test";

pub fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
}

pub fn read_key(name: &str) -> Vec<u8> {
    std::fs::read(keys_dir().join(name)).expect("test key")
}

/// The private key for an algorithm family, from `tests/keys/`.
pub fn signing_key(alg: Algorithm, file: &str) -> EncodingKey {
    let pem = read_key(file);
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .expect("parse test key")
}

/// A public JWK (with `kid`) for a private test key.
pub fn public_jwk(alg: Algorithm, file: &str, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(&signing_key(alg, file), alg).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(jwk).expect("jwk json")
}

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Valid claims for [`ISSUER`]/[`AUDIENCE`], with `extra` merged in.
pub fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice",
        "iat": now(), "exp": now() + 600, "scope": "catalog:read",
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
    }
    c
}

pub fn mint(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("encode")
}

/// A token with a hand-written header and no signature check possible.
pub fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b.encode(header.to_string()),
        b.encode(claims.to_string()),
        b.encode(signature)
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestConfig {
    #[serde(default)]
    auth: AuthConfig,
    #[serde(default)]
    rate_limits: RateLimitsConfig,
    #[serde(default)]
    routes: Vec<TestRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRoute {
    name: String,
    auth: Option<RouteAuthConfig>,
    rate_limit: Option<Vec<String>>,
    cors: Option<CorsConfig>,
}

pub struct Built {
    pub policies: Policies,
    pub routes: HashMap<String, RoutePolicy>,
}

impl Built {
    pub fn route(&self, name: &str) -> &RoutePolicy {
        &self.routes[name]
    }
}

/// Builds policies and routes from a YAML document (`auth`, `rate_limits`,
/// `routes`), resolving files against `tests/keys/`.
pub fn build(yaml: &str, state: &PolicyState) -> Built {
    try_build(yaml, state).unwrap_or_else(|e| panic!("config errors:\n{e}"))
}

pub fn try_build(
    yaml: &str,
    state: &PolicyState,
) -> Result<Built, weir_policy::config::ConfigErrors> {
    let cfg: TestConfig = serde_norway::from_str(yaml).expect("yaml");
    let policies = Policies::build(&cfg.auth, &cfg.rate_limits, &keys_dir(), state)?;
    let mut routes = HashMap::new();
    for (i, r) in cfg.routes.iter().enumerate() {
        let path = format!("routes[{i}]");
        let rp = policies.route(RouteRef {
            name: &r.name,
            path: &path,
            auth: r.auth.as_ref(),
            rate_limit: r.rate_limit.as_deref(),
            cors: r.cors.as_ref(),
        })?;
        routes.insert(r.name.clone(), rp);
    }
    Ok(Built { policies, routes })
}

/// Validates without building (no runtime needed).
pub fn validate(yaml: &str) -> Result<(), weir_policy::config::ConfigErrors> {
    let cfg: TestConfig = serde_norway::from_str(yaml).expect("yaml");
    let paths: Vec<String> = (0..cfg.routes.len())
        .map(|i| format!("routes[{i}]"))
        .collect();
    let refs = cfg.routes.iter().zip(&paths).map(|(r, path)| RouteRef {
        name: &r.name,
        path,
        auth: r.auth.as_ref(),
        rate_limit: r.rate_limit.as_deref(),
        cors: r.cors.as_ref(),
    });
    weir_policy::config::validate(&cfg.auth, &cfg.rate_limits, &keys_dir(), refs)
}

pub fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("request").into_parts().0
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
