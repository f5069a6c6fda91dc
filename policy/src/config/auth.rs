//! `auth:` (top level) and a route's `auth:` block.

use std::collections::BTreeMap;

use proxy_core::config::Secret;
use serde::{Deserialize, Serialize};

use super::HumanDuration;

/// Top-level `auth:`: the credentials the gateway knows.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// API keys, stored as SHA-256 hashes of the key (never the key itself).
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// A YAML file holding more keys in the same shape as `api_keys`
    /// (relative paths are resolved against the config file's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys_file: Option<String>,
    /// Request header carrying the API key.
    #[serde(default = "default_api_key_header")]
    pub api_key_header: String,
    /// Query parameter carrying the API key (off unless set: keys in URLs end
    /// up in logs and browser history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_query: Option<String>,
    /// JWT issuers; the token's `iss` picks the provider.
    #[serde(default)]
    pub jwt: Vec<JwtProviderConfig>,
    /// Header that carries the authenticated consumer to the upstream,
    /// namespaced: `apikey:<name>`, `jwt:<sub>` or `jwt:<namespace>:<sub>`.
    #[serde(default = "default_consumer_header")]
    pub consumer_header: String,
    /// Header that carries the granted scopes (space separated) upstream; off
    /// unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_header: Option<String>,
    /// More headers to remove from every client request, on top of the
    /// identity headers above (which are always removed).
    #[serde(default)]
    pub strip_headers: Vec<String>,
    /// Auth for routes that have no `auth:` block; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<RouteAuthConfig>,
    /// Throttle on failed authentications per client address.
    #[serde(default)]
    pub failure_limit: super::AuthFailureLimitConfig,
    /// Forward credentials a route did not verify (`Authorization`, the API
    /// key header and query parameter) to the upstream; removed by default.
    /// A route's `auth.forward_unused_credentials` overrides it.
    #[serde(default)]
    pub forward_unused_credentials: bool,
}

impl Default for AuthConfig {
    /// The same as an empty `auth: {}` block.
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            api_keys_file: None,
            api_key_header: default_api_key_header(),
            api_key_query: None,
            jwt: Vec::new(),
            consumer_header: default_consumer_header(),
            scopes_header: None,
            strip_headers: Vec::new(),
            default: None,
            failure_limit: super::AuthFailureLimitConfig::default(),
            forward_unused_credentials: false,
        }
    }
}

fn default_api_key_header() -> String {
    "x-api-key".to_owned()
}

fn default_consumer_header() -> String {
    "x-weir-consumer".to_owned()
}

/// One API key: `sha256` is the lowercase hex SHA-256 of the key (a secret:
/// a leaked hash of a short key can be brute-forced, so it is never shown).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The consumer this key belongs to (forwarded, used in rate-limit keys).
    pub name: String,
    pub sha256: Secret<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// One JWT issuer.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JwtProviderConfig {
    /// Must equal the token's `iss`.
    pub issuer: String,
    /// The token's `aud` must contain one of these; empty means `aud` is not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Verification keys as a JWK set (file, URL or inline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<JwksConfig>,
    /// A PEM file with one public key (RSA, EC or Ed25519).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
    /// A shared secret for HS256/384/512 (redacted wherever it is shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret<String>>,
    /// Accepted `alg` values, e.g. `[RS256]`. Required: there is no default,
    /// so nobody accepts an algorithm they did not choose.
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    #[serde(default = "default_leeway")]
    pub leeway: HumanDuration,
    /// Claim -> upstream header, e.g. `{ sub: x-user-id }`.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
    /// Claims every token of this issuer must carry.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Claim holding the scopes: a space-separated string (`scope`) or an array (`scp`).
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
    /// Claim naming the consumer.
    #[serde(default = "default_consumer_claim")]
    pub consumer_claim: String,
    /// Namespace of this issuer's consumers: the consumer is `jwt:<sub>`
    /// without it, `jwt:<namespace>:<sub>` with it. Required (and distinct)
    /// when several issuers are configured, so two issuers' subjects never
    /// name the same consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_namespace: Option<String>,
    /// Required `typ` header (RFC 8725 explicit typing), e.g. `at+jwt`;
    /// compared case-insensitively, `application/` optional. Not checked when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

fn default_leeway() -> HumanDuration {
    HumanDuration::from_secs(30)
}

fn default_scope_claim() -> String {
    "scope".to_owned()
}

fn default_consumer_claim() -> String {
    "sub".to_owned()
}

/// Where a JWK set comes from: exactly one of `file`, `url`, `inline`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `http://` or `https://` URL, fetched in the background. Shown (in
    /// `/config`, logs and errors) without user information or query, which
    /// some identity providers use to carry a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<proxy_core::config::SecretUrl>,
    /// CA bundle (PEM) trusted for an `https://` URL; the system bundle otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// A JWK set written in the config (`{ keys: [...] }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<serde_json::Value>,
    /// How often a URL is fetched again.
    #[serde(default = "default_refresh")]
    pub refresh: HumanDuration,
    /// Floor between two fetches, also those caused by an unknown `kid`, so
    /// tokens with made-up key ids cannot hammer the JWKS host.
    #[serde(default = "default_min_refresh")]
    pub min_refresh_interval: HumanDuration,
    /// Time limit of one fetch.
    #[serde(default = "default_fetch_timeout")]
    pub timeout: HumanDuration,
}

fn default_refresh() -> HumanDuration {
    HumanDuration::from_secs(300)
}

fn default_min_refresh() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_fetch_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

/// One way a route accepts a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// Anonymous callers are admitted (credentials, when sent, are still checked).
    None,
    ApiKey,
    Jwt,
}

/// A route's `auth:` block.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteAuthConfig {
    /// Accepted methods; the first credential the request carries, in this
    /// order, is the one checked.
    pub any_of: Vec<AuthMethod>,
    /// Scopes the caller must hold, all of them.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// JWT claims the token must carry on this route.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Keep the `Authorization` header for the upstream (removed by default).
    #[serde(default)]
    pub forward_authorization: bool,
    /// Forward credentials this route did not verify; `auth.forward_unused_credentials`
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_unused_credentials: Option<bool>,
}
