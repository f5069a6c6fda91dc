//! JWT verification for one issuer, following RFC 7515 (JWS), RFC 7519
//! (JWT) and RFC 8725 (JWT BCP) point by point; `docs/policies.md` lists
//! what is enforced.
//!
//! The order of checks matters for safety. Before any key is touched, the
//! token is parsed strictly ([`peek`]): bounded size, exactly three
//! base64url segments (a JWE's five are refused), header and claims JSON
//! objects with unique member names, no `crit` (Weir understands no
//! extension, RFC 7515 §4.1.11), no nested JWT (`cty: JWT`), no compression
//! (`zip`). The issuer (read from the unverified payload) only *selects* the
//! provider; the header's `alg` must be in that provider's allow-list (`none`
//! never is: jsonwebtoken cannot even parse it) and match the key's type;
//! `typ` is checked when configured; only then is the signature verified and
//! `exp`/`nbf`/`iat`/`iss`/`aud` validated. Header parameters that point at
//! keys (`jku`, `x5u`, `jwk`, `x5c`) are never followed or used: keys come
//! only from the provider's configuration.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderName;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::error::AuthError;
use super::json::{self, ObjectError};
use super::jwks::RemoteJwks;
use super::keys::KeySet;
use crate::config::AuthMethod;
use crate::identity::Identity;

/// Longest token accepted, in bytes. Real access tokens are a few hundred
/// bytes to a few KiB; anything near this is an attempt to make the gateway
/// decode and hash megabytes per request.
pub(crate) const MAX_TOKEN: usize = 16 * 1024;

/// Where a provider's keys live.
#[derive(Clone)]
pub(crate) enum KeySource {
    Static(Arc<KeySet>),
    Remote(Arc<RemoteJwks>),
}

/// One configured issuer, ready to verify.
#[derive(Clone)]
pub(crate) struct Provider {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) keys: KeySource,
    pub(crate) leeway_secs: u64,
    pub(crate) forward_claims: Vec<(String, HeaderName)>,
    pub(crate) required_claims: Vec<String>,
    pub(crate) scope_claim: String,
    pub(crate) consumer_claim: String,
    /// `jwt:` or `jwt:<namespace>:`, put before the consumer claim.
    pub(crate) consumer_prefix: String,
    /// Required `typ`, normalized by [`normalize_media_type`].
    pub(crate) typ: Option<String>,
}

/// A token parsed but not verified.
pub(crate) struct Unverified<'a> {
    pub(crate) token: &'a str,
    pub(crate) header: Map<String, Value>,
    pub(crate) issuer: Option<String>,
}

fn malformed(description: &'static str) -> AuthError {
    AuthError::invalid("malformed_token", description)
}

fn object(segment: &str, what: &'static str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| {
        malformed(match what {
            "header" => "header is not base64url",
            _ => "payload is not base64url",
        })
    })?;
    json::parse_object(&bytes).map_err(|e| match (e, what) {
        (ObjectError::Duplicate(_), "header") => {
            AuthError::invalid("duplicate_name", "a header parameter appears twice")
        }
        (ObjectError::Duplicate(_), _) => {
            AuthError::invalid("duplicate_name", "a claim appears twice")
        }
        (ObjectError::NotAnObject, "header") => malformed("header is not a JSON object"),
        (ObjectError::NotAnObject, _) => malformed("payload is not a JSON object"),
    })
}

/// Parses the token strictly and applies the checks that need no key (see
/// the module doc). `iss` only chooses which provider (and so which keys)
/// will do the verifying.
pub(crate) fn peek(token: &str) -> Result<Unverified<'_>, AuthError> {
    if token.len() > MAX_TOKEN {
        return Err(AuthError::invalid("token_too_large", "token too large"));
    }
    let segments: Vec<&str> = token.split('.').collect();
    let [header, payload, _signature] = segments[..] else {
        return Err(if segments.len() == 5 {
            AuthError::invalid(
                "unsupported_token",
                "encrypted tokens (JWE) are not accepted",
            )
        } else {
            malformed("not a JWT")
        });
    };
    let header = object(header, "header")?;
    let claims = object(payload, "payload")?;

    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: an extension the recipient does not understand
        // makes the JWS invalid; Weir implements none (not even `b64`).
        return Err(AuthError::invalid(
            "crit_not_understood",
            "critical header parameters are not understood",
        ));
    }
    if header
        .get("cty")
        .and_then(Value::as_str)
        .is_some_and(|c| normalize_media_type(c) == "jwt")
    {
        return Err(AuthError::invalid(
            "unsupported_token",
            "nested JWTs are not accepted",
        ));
    }
    if header.contains_key("zip") {
        return Err(AuthError::invalid(
            "unsupported_token",
            "compressed tokens are not accepted",
        ));
    }
    if ["alg", "kid", "typ", "cty"]
        .iter()
        .any(|name| header.get(*name).is_some_and(|v| !v.is_string()))
    {
        return Err(malformed("a header parameter is not a string"));
    }
    // RFC 7519 §2: a NumericDate is a number (fractions allowed).
    for name in ["exp", "nbf", "iat"] {
        if claims
            .get(name)
            .is_some_and(|v| v.as_f64().is_none_or(|t| !t.is_finite() || t < 0.0))
        {
            return Err(AuthError::invalid(
                "invalid_claim",
                format!("{name} is not a NumericDate"),
            ));
        }
    }
    let issuer = match claims.get("iss") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(AuthError::invalid("invalid_claim", "iss is not a string")),
    };
    Ok(Unverified {
        token,
        header,
        issuer,
    })
}

/// A media type as RFC 7515 §4.1.9 compares `typ`/`cty`: case-insensitive,
/// with the `application/` prefix optional.
pub(crate) fn normalize_media_type(t: &str) -> String {
    let t = t.trim().to_ascii_lowercase();
    match t.strip_prefix("application/") {
        Some(rest) if !rest.contains('/') => rest.to_owned(),
        _ => t,
    }
}

impl Provider {
    /// Verifies the token and returns the caller's identity.
    pub(crate) async fn verify(&self, unverified: Unverified<'_>) -> Result<Identity, AuthError> {
        let token = unverified.token;
        let header = &unverified.header;
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("header has no alg"))?;
        let alg: Algorithm = alg_name.parse().map_err(|_| {
            AuthError::invalid(
                "alg_not_allowed",
                format!("algorithm {alg_name:?} is not accepted"),
            )
        })?;
        if !self.algorithms.contains(&alg) {
            return Err(AuthError::invalid(
                "alg_not_allowed",
                format!("algorithm {alg_name} is not accepted for this issuer"),
            ));
        }
        if let Some(want) = &self.typ {
            let have = header.get("typ").and_then(Value::as_str);
            if have.map(normalize_media_type).as_deref() != Some(want.as_str()) {
                return Err(AuthError::invalid(
                    "wrong_type",
                    format!("typ must be {want}"),
                ));
            }
        }
        let kid = header.get("kid").and_then(Value::as_str);

        let mut keys = self.current_keys();
        if let KeySource::Remote(remote) = &self.keys
            && (keys.keys.is_empty() || kid.is_some_and(|kid| !keys.has_kid(kid)))
        {
            // Nothing loaded yet, or a key we have not seen: the issuer may
            // have rotated. One early
            // fetch (rate-limited by the floor; a fetch already in flight is
            // waited for), then decide with whatever is current.
            remote.refresh_if_due().await;
            keys = remote.keys();
        }
        if let Some(kid) = kid
            && !keys.knows(kid)
        {
            return Err(AuthError::invalid(
                "unknown_kid",
                "the token's key id is not known",
            ));
        }

        let validation = self.validation(alg);
        let mut last = AuthError::invalid(
            "alg_key_mismatch",
            format!("no key of this issuer verifies {alg_name}"),
        );
        for key in keys.candidates(kid, alg) {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return self.identity(data.claims),
                Err(e) => {
                    last = map_error(e.kind());
                    // Claim errors are the same for every key; stop there.
                    if !matches!(e.kind(), ErrorKind::InvalidSignature) {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn current_keys(&self) -> Arc<KeySet> {
        match &self.keys {
            KeySource::Static(k) => k.clone(),
            KeySource::Remote(r) => r.keys(),
        }
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway_secs;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        let mut required = vec!["exp", "iss"];
        if self.audiences.is_empty() {
            // Checked in `identity`: with no audience of its own, Weir must
            // reject any token that names audiences (RFC 7519 §4.1.3).
            v.validate_aud = false;
        } else {
            v.set_audience(&self.audiences);
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        v
    }

    fn identity(&self, claims: Map<String, Value>) -> Result<Identity, AuthError> {
        if self.audiences.is_empty() && claims.contains_key("aud") {
            return Err(AuthError::invalid(
                "wrong_audience",
                "token names an audience and this issuer has none configured",
            ));
        }
        // jsonwebtoken leaves `iat` alone; a token issued in the future is as
        // suspicious as one not yet valid. A NumericDate may have a fraction.
        if let Some(iat) = claims.get("iat") {
            let Some(iat) = iat.as_f64().filter(|t| t.is_finite() && *t >= 0.0) else {
                return Err(AuthError::invalid(
                    "invalid_claim",
                    "iat is not a NumericDate",
                ));
            };
            let now = jsonwebtoken::get_current_timestamp();
            if iat > (now + self.leeway_secs) as f64 {
                return Err(AuthError::invalid(
                    "token_not_yet_valid",
                    "token issued in the future",
                ));
            }
        }
        // RFC 7519 §4.1.2: `sub` is a string; so is whatever names the consumer.
        for c in ["sub", self.consumer_claim.as_str()] {
            if claims.get(c).is_some_and(|v| !v.is_string()) {
                return Err(AuthError::invalid(
                    "invalid_claim",
                    format!("claim {c} is not a string"),
                ));
            }
        }
        for c in &self.required_claims {
            if !claims.contains_key(c) {
                return Err(AuthError::invalid(
                    "missing_claim",
                    format!("claim {c} is required"),
                ));
            }
        }
        let scopes = match claims.get(&self.scope_claim) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let consumer = claims
            .get(&self.consumer_claim)
            .and_then(Value::as_str)
            .map(|c| format!("{}{c}", self.consumer_prefix));
        Ok(Identity {
            method: AuthMethod::Jwt,
            consumer,
            scopes,
            claims,
            issuer: Some(self.issuer.clone()),
        })
    }
}

fn map_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::invalid("token_expired", "token expired"),
        ErrorKind::ImmatureSignature => {
            AuthError::invalid("token_not_yet_valid", "token not valid yet")
        }
        ErrorKind::InvalidIssuer => AuthError::invalid("wrong_issuer", "wrong issuer"),
        ErrorKind::InvalidAudience => AuthError::invalid("wrong_audience", "wrong audience"),
        ErrorKind::InvalidSignature => AuthError::invalid("bad_signature", "signature invalid"),
        ErrorKind::MissingRequiredClaim(c) => {
            AuthError::invalid("missing_claim", format!("claim {c} is required"))
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => {
            AuthError::invalid("alg_key_mismatch", "algorithm does not fit the key")
        }
        ErrorKind::InvalidClaimFormat(c) => {
            AuthError::invalid("invalid_claim", format!("claim {c} has the wrong type"))
        }
        _ => AuthError::invalid("invalid_token", "token invalid"),
    }
}
