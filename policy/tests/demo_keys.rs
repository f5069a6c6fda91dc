//! The demo credentials shipped in `config/keys/` fit together, and the
//! one-line `openssl` recipe in `docs/policies.md` mints a token they accept.

mod common;

use std::path::PathBuf;

use common::{PEER, request};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::json;
use weir_policy::config::{AuthConfig, RateLimitsConfig};
use weir_policy::{Policies, PolicyState, RouteRef};

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

const AUTH: &str = r#"
api_keys:
  - { name: demo, sha256: "c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c", scopes: [catalog:read] }
jwt:
  - issuer: https://demo.weir.dev
    audiences: [weir-demo]
    jwks: { file: keys/demo-jwks.json }
    algorithms: [RS256]
    forward_claims: { sub: x-user-id }
"#;

#[derive(Deserialize)]
struct Route {
    auth: weir_policy::config::RouteAuthConfig,
}

async fn verdict(token: &str) -> Result<Option<String>, &'static str> {
    let auth: AuthConfig = serde_norway::from_str(AUTH).unwrap();
    let policies = Policies::build(
        &auth,
        &RateLimitsConfig::default(),
        &config_dir(),
        &PolicyState::new(),
    )
    .unwrap();
    let r: Route =
        serde_norway::from_str("auth: { any_of: [jwt, api_key], scopes: [catalog:read] }").unwrap();
    let route = policies
        .route(RouteRef {
            name: "demo",
            path: "routes[0]",
            auth: Some(&r.auth),
            rate_limit: None,
            cors: None,
        })
        .unwrap();
    let value = format!("Bearer {token}");
    let mut parts = request("GET", "/v1/products", &[("authorization", &value)]);
    match policies.check(&route, &mut parts, PEER).await {
        Ok(_) => Ok(parts
            .headers
            .get("x-user-id")
            .map(|v| v.to_str().unwrap().to_owned())),
        Err(r) => Err(r.reason()),
    }
}

#[tokio::test]
async fn demo_pem_and_jwks_match() {
    let pem = std::fs::read(config_dir().join("keys/demo-jwt.pem")).unwrap();
    let key = EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("demo-1".into());
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"iss": "https://demo.weir.dev", "aud": "weir-demo", "sub": "alice", "scope": "catalog:read", "exp": now + 300});
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    assert_eq!(verdict(&token).await, Ok(Some("alice".to_owned())));
}

#[tokio::test]
async fn openssl_one_liner_mints_an_accepted_token() {
    let script = r#"b64() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }; h=$(printf '{"alg":"RS256","typ":"JWT","kid":"demo-1"}' | b64); p=$(printf '{"iss":"https://demo.weir.dev","aud":"weir-demo","sub":"alice","scope":"catalog:read orders:write","exp":%d}' $(( $(date +%s) + 3600 )) | b64); s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -sign config/keys/demo-jwt.pem | b64); echo "$h.$p.$s""#;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(config_dir().join(".."))
        .output();
    let token = match out {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap().trim().to_owned(),
        _ => {
            eprintln!("skipping: openssl is not available");
            return;
        }
    };
    assert_eq!(verdict(&token).await, Ok(Some("alice".to_owned())));
}
