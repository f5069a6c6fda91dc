//! Who the caller is, once authenticated, and the headers that say so upstream.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::AuthMethod;

/// Prefix of every consumer authenticated by API key: `apikey:<name>`.
pub(crate) const API_KEY_PREFIX: &str = "apikey:";
/// Prefix of every consumer authenticated by JWT: `jwt:<sub>`, or
/// `jwt:<namespace>:<sub>` when the issuer has a `consumer_namespace`.
pub(crate) const JWT_PREFIX: &str = "jwt:";

/// The authenticated caller of one request.
#[derive(Clone, Debug)]
pub struct Identity {
    /// How the caller authenticated (`ApiKey` or `Jwt`).
    pub method: AuthMethod,
    /// Namespaced, so no JWT subject can pass for an API key or for another
    /// issuer's subject: `apikey:<name>`, `jwt:<sub>` or
    /// `jwt:<namespace>:<sub>` (the consumer claim is `sub` by default).
    /// This is the value of the consumer header and of `consumer` in
    /// rate-limit keys.
    pub consumer: Option<String>,
    pub scopes: Vec<String>,
    /// The verified JWT claims (empty for API keys).
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Issuer of the JWT, if any.
    pub issuer: Option<String>,
}

impl Identity {
    /// A claim as a string: strings as they are, other JSON values encoded.
    pub fn claim_str(&self, name: &str) -> Option<String> {
        self.claims.get(name).map(claim_to_string)
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

pub(crate) fn claim_to_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(claim_to_string)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// The headers that carry identity upstream. Every one of them is removed
/// from every incoming request first, authenticated or not, so a client can
/// never forge one.
#[derive(Clone, Debug)]
pub(crate) struct IdentityHeaders {
    pub(crate) consumer: HeaderName,
    pub(crate) scopes: Option<HeaderName>,
    /// All names to strip: the above, every provider's claim headers, extras.
    pub(crate) strip: Arc<[HeaderName]>,
}

impl IdentityHeaders {
    pub(crate) fn strip_from(&self, headers: &mut HeaderMap) {
        for name in self.strip.iter() {
            headers.remove(name);
        }
    }

    /// Writes the identity into the request headers (claims are written by
    /// the JWT provider that knows its `forward_claims`).
    pub(crate) fn apply(
        &self,
        identity: &Identity,
        forward_claims: &[(String, HeaderName)],
        headers: &mut HeaderMap,
    ) {
        if let Some(c) = identity.consumer.as_deref() {
            insert(headers, &self.consumer, c);
        }
        if let Some(name) = &self.scopes {
            insert(headers, name, &identity.scopes.join(" "));
        }
        for (claim, name) in forward_claims {
            if let Some(v) = identity.claim_str(claim) {
                insert(headers, name, &v);
            }
        }
    }
}

fn insert(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            headers.insert(name.clone(), v);
        }
        // A claim with control characters cannot travel in a header; the
        // upstream sees no header rather than a mangled one.
        Err(_) => tracing::debug!(header = %name, "identity value is not a valid header value"),
    }
}
