//! Authentication: JWT bearer tokens and API keys, per-route requirements,
//! and the identity headers forwarded upstream.

mod api_key;
pub(crate) mod compile;
pub(crate) mod error;
pub(crate) mod fetch;
mod json;
mod jwks;
mod jwt;
mod keys;
mod verified_keys;

use std::collections::HashMap;

use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderName, Uri};

pub(crate) use api_key::ApiKeys;
pub(crate) use compile::compile;
use error::AuthError;
pub(crate) use jwks::RemoteJwks;
pub(crate) use jwt::Provider;

use crate::config::AuthMethod;
use crate::identity::{Identity, IdentityHeaders};

/// A route's requirements, validated.
#[derive(Clone, Debug)]
pub(crate) struct RouteAuth {
    pub(crate) methods: Vec<AuthMethod>,
    pub(crate) scopes: Vec<String>,
    pub(crate) required_claims: Vec<String>,
    pub(crate) forward_authorization: bool,
    /// Forward credentials the route did not verify (resolved against the
    /// global `auth.forward_unused_credentials`).
    pub(crate) forward_unused: bool,
}

impl RouteAuth {
    pub(crate) fn allows(&self, m: AuthMethod) -> bool {
        self.methods.contains(&m)
    }
}

/// Everything needed to authenticate requests, for one config generation.
pub(crate) struct Authenticator {
    pub(crate) api_keys: ApiKeys,
    pub(crate) api_key_header: HeaderName,
    pub(crate) api_key_query: Option<String>,
    pub(crate) providers: Vec<Provider>,
    pub(crate) by_issuer: HashMap<String, usize>,
    pub(crate) identity_headers: IdentityHeaders,
    /// `auth.forward_unused_credentials`: the default of every route.
    pub(crate) forward_unused: bool,
}

impl Authenticator {
    /// Removes identity headers a client may have sent. Runs on every
    /// request, whatever the route's auth, before anything else.
    pub(crate) fn strip_identity(&self, parts: &mut Parts) {
        self.identity_headers.strip_from(&mut parts.headers);
    }

    /// The method whose credential this request will be checked with: the
    /// first of the route's methods whose credential it carries.
    pub(crate) fn chosen(&self, route: &RouteAuth, parts: &Parts) -> Option<AuthMethod> {
        route.methods.iter().copied().find(|m| match m {
            AuthMethod::Jwt => bearer_token(parts).is_some(),
            AuthMethod::ApiKey => self.has_api_key(parts),
            AuthMethod::None => false,
        })
    }

    /// Removes every credential Weir knows (`Authorization`, the API key
    /// header and query parameter), for a route that verified none of them
    /// and does not forward unused credentials.
    pub(crate) fn remove_credentials(&self, parts: &mut Parts) {
        parts.headers.remove(AUTHORIZATION);
        self.remove_api_keys(parts);
    }

    /// Checks the route's requirements and, on success, writes the identity
    /// headers. The credential checked is removed (`Authorization` is kept
    /// when the route says `forward_authorization`); the credentials not
    /// checked are removed too unless the route forwards unused credentials,
    /// so the upstream never receives a credential Weir did not vouch for.
    pub(crate) async fn authenticate(
        &self,
        route: &RouteAuth,
        parts: &mut Parts,
    ) -> Result<Option<Identity>, AuthError> {
        // Two values of one credential header: which one the upstream would
        // read is anyone's guess, so neither is believed.
        if parts.headers.get_all(AUTHORIZATION).iter().nth(1).is_some()
            || parts
                .headers
                .get_all(&self.api_key_header)
                .iter()
                .nth(1)
                .is_some()
        {
            return Err(AuthError::invalid(
                "ambiguous_credentials",
                "more than one credential header",
            ));
        }
        let chosen = self.chosen(route, parts);
        let bearer = match chosen {
            Some(AuthMethod::Jwt) => bearer_token(parts),
            _ => None,
        };
        let api_key = match chosen {
            Some(AuthMethod::ApiKey) => self.take_api_key(parts),
            _ => None,
        };
        let keep_authorization = if chosen == Some(AuthMethod::Jwt) {
            route.forward_authorization
        } else {
            route.forward_unused
        };
        if !keep_authorization {
            parts.headers.remove(AUTHORIZATION);
        }
        if !route.forward_unused {
            self.remove_api_keys(parts);
        }

        let identity = match (chosen, bearer, api_key) {
            (Some(AuthMethod::Jwt), Some(token), _) => self.verify_jwt(&token).await?,
            (Some(AuthMethod::ApiKey), _, Some(key)) => self.verify_api_key(&key)?,
            _ => {
                if route.allows(AuthMethod::None) {
                    return Ok(None);
                }
                return Err(AuthError::invalid(
                    "missing_credentials",
                    "credentials required",
                ));
            }
        };

        if let Some(missing) = route.scopes.iter().find(|s| !identity.has_scope(s)) {
            return Err(AuthError::forbidden(
                "insufficient_scope",
                format!("scope {missing} required"),
            ));
        }
        if let Some(missing) = route
            .required_claims
            .iter()
            .find(|c| !identity.claims.contains_key(*c))
        {
            return Err(AuthError::forbidden(
                "missing_claim",
                format!("claim {missing} required"),
            ));
        }
        let forward: &[(String, HeaderName)] = match identity.issuer.as_deref() {
            Some(iss) => self
                .by_issuer
                .get(iss)
                .and_then(|&i| self.providers.get(i))
                .map_or(&[], |p| &p.forward_claims),
            None => &[],
        };
        self.identity_headers
            .apply(&identity, forward, &mut parts.headers);
        Ok(Some(identity))
    }

    async fn verify_jwt(&self, token: &str) -> Result<Identity, AuthError> {
        let unverified = jwt::peek(token)?;
        let provider = unverified
            .issuer
            .as_deref()
            .and_then(|iss| self.by_issuer.get(iss))
            .and_then(|&i| self.providers.get(i))
            .ok_or_else(|| AuthError::invalid("unknown_issuer", "issuer not accepted"))?;
        provider.verify(unverified).await
    }

    fn verify_api_key(&self, key: &str) -> Result<Identity, AuthError> {
        let stored = self
            .api_keys
            .lookup(key)
            .ok_or_else(|| AuthError::invalid("unknown_api_key", "API key not valid"))?;
        Ok(Identity {
            method: AuthMethod::ApiKey,
            consumer: Some([crate::identity::API_KEY_PREFIX, &stored.name].concat()),
            scopes: stored.scopes.to_vec(),
            claims: serde_json::Map::new(),
            issuer: None,
        })
    }

    fn has_api_key(&self, parts: &Parts) -> bool {
        parts.headers.contains_key(&self.api_key_header)
            || self.api_key_query.as_deref().is_some_and(|param| {
                parts
                    .uri
                    .query()
                    .is_some_and(|q| take_query_param(q, param).is_some())
            })
    }

    /// Removes the API key header and every API key query parameter.
    fn remove_api_keys(&self, parts: &mut Parts) {
        parts.headers.remove(&self.api_key_header);
        // One parameter goes per round: bounded by the parameters there are.
        let params = parts.uri.query().map_or(0, |q| q.split('&').count());
        for _ in 0..params {
            if self.take_api_key(parts).is_none() {
                break;
            }
        }
    }

    /// Takes the API key out of the request (header first, then query).
    fn take_api_key(&self, parts: &mut Parts) -> Option<String> {
        if let Some(v) = parts.headers.remove(&self.api_key_header) {
            return v.to_str().ok().map(str::to_owned);
        }
        let param = self.api_key_query.as_deref()?;
        let (value, rest) = take_query_param(parts.uri.query()?, param)?;
        let path = parts.uri.path();
        let pq = if rest.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{rest}")
        };
        // Rebuilt from parts of a valid URI, so this cannot fail; if it ever
        // did, the request keeps its URI rather than losing its path.
        let mut uri_parts = parts.uri.clone().into_parts();
        if let Ok(pq) = pq.parse() {
            uri_parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(uri_parts) {
                parts.uri = uri;
            }
        }
        Some(value)
    }
}

fn bearer_token(parts: &Parts) -> Option<String> {
    let v = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Finds `name=value` in a query string; returns the decoded value and the
/// query without that parameter.
fn take_query_param(query: &str, name: &str) -> Option<(String, String)> {
    let mut value = None;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if value.is_none() && k == name {
            value = Some(percent_decode(v));
        } else {
            rest.push(pair);
        }
    }
    value.map(|v| (v, rest.join("&")))
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_param_is_taken_out() {
        assert_eq!(
            take_query_param("a=1&api_key=k%2Fx&b=2", "api_key"),
            Some(("k/x".to_owned(), "a=1&b=2".to_owned()))
        );
        assert_eq!(
            take_query_param("api_key=z", "api_key"),
            Some(("z".into(), String::new()))
        );
        assert_eq!(take_query_param("a=1", "api_key"), None);
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("a%zz"), "a%zz");
    }
}
