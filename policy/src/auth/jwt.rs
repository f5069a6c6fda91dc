//! JWT verification for one issuer.
//!
//! The order of checks matters for safety: the issuer (read from the
//! unverified payload) only *selects* the provider; the header's `alg` must be
//! in that provider's allow-list and match the key's type before any signature
//! is checked; only then are `exp`/`nbf`/`iat`/`iss`/`aud` validated.
//! `alg: none` is not an algorithm jsonwebtoken can even parse, and we refuse
//! it before that.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderName;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::error::AuthError;
use super::jwks::RemoteJwks;
use super::keys::KeySet;
use crate::config::AuthMethod;
use crate::identity::Identity;

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
}

/// The parts of a token we read before verifying it.
pub(crate) struct Unverified<'a> {
    pub(crate) token: &'a str,
    pub(crate) issuer: Option<String>,
}

/// Splits the token and reads `iss` from the payload, unverified: it only
/// chooses which provider (and so which keys) will do the verifying.
pub(crate) fn peek(token: &str) -> Result<Unverified<'_>, AuthError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::invalid("malformed_token", "not a JWT"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AuthError::invalid("malformed_token", "payload is not base64url"))?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::invalid("malformed_token", "payload is not a JSON object"))?;
    let issuer = claims.get("iss").and_then(Value::as_str).map(str::to_owned);
    Ok(Unverified { token, issuer })
}

/// The `alg` the header claims, as written (so `none` can be named).
fn header_alg(token: &str) -> Result<String, AuthError> {
    let header = token.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::invalid("malformed_token", "header is not base64url"))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::invalid("malformed_token", "header is not JSON"))?;
    v.get("alg")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| AuthError::invalid("malformed_token", "header has no alg"))
}

impl Provider {
    /// Verifies the token and returns the caller's identity.
    pub(crate) async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let alg_name = header_alg(token)?;
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
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::invalid("malformed_token", "header cannot be decoded"))?;
        let kid = header.kid.as_deref();

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
            v.validate_aud = false;
        } else {
            v.set_audience(&self.audiences);
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        v
    }

    fn identity(&self, claims: Map<String, Value>) -> Result<Identity, AuthError> {
        // jsonwebtoken leaves `iat` alone; a token issued in the future is as
        // suspicious as one not yet valid.
        if let Some(iat) = claims.get("iat") {
            let Some(iat) = iat.as_u64() else {
                return Err(AuthError::invalid("invalid_claim", "iat is not a number"));
            };
            let now = jsonwebtoken::get_current_timestamp();
            if iat > now + self.leeway_secs {
                return Err(AuthError::invalid(
                    "token_not_yet_valid",
                    "token issued in the future",
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
            .map(crate::identity::claim_to_string);
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
