//! Verification keys: a parsed JWK set, a PEM file or a shared secret.
//!
//! Every key remembers which algorithms it may verify. A token is only checked
//! against keys whose algorithm family (and, when the JWK names one, exact
//! algorithm or curve) matches the token's `alg`, which is what rules out
//! algorithm confusion such as an HS256 token "signed" with an RSA public key.

use std::str::FromStr;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// One key able to verify signatures.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    pub(crate) kid: Option<String>,
    /// Exact algorithm when the source pins it (JWK `alg`, EC curve).
    pub(crate) alg: Option<Algorithm>,
    pub(crate) key: DecodingKey,
}

impl VerifyKey {
    /// Whether this key may verify a token whose header says `alg`.
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        self.key.family() == alg.family() && self.alg.is_none_or(|pinned| pinned == alg)
    }
}

/// The keys of one provider at one moment.
#[derive(Clone, Default)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<VerifyKey>,
}

impl KeySet {
    /// Keys to try for a token: those named by its `kid` plus keys without a
    /// `kid` (a PEM key, a secret), or, for a token without `kid`, every key;
    /// always only keys that accept the algorithm.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        self.keys.iter().filter(move |k| {
            let named = match (kid, k.kid.as_deref()) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            };
            named && k.accepts(alg)
        })
    }

    /// Whether a key carries exactly this `kid` (a miss on a remote set means
    /// the issuer may have rotated).
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Whether a token naming `kid` has any key to be checked against.
    pub(crate) fn knows(&self, kid: &str) -> bool {
        self.keys
            .iter()
            .any(|k| k.kid.as_deref().is_none_or(|have| have == kid))
    }

    /// Parses a JWK set document. Keys we cannot use (encryption keys,
    /// unsupported curves) are skipped and named in `skipped`, not fatal: real
    /// JWKS endpoints mix key types.
    pub(crate) fn from_jwks_json(
        value: &serde_json::Value,
        skipped: &mut Vec<String>,
    ) -> Result<Self, String> {
        let list = value
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| "a JWK set needs a \"keys\" array".to_owned())?;
        let mut keys = Vec::with_capacity(list.len());
        for (i, raw) in list.iter().enumerate() {
            match serde_json::from_value::<Jwk>(raw.clone())
                .map_err(|e| e.to_string())
                .and_then(|jwk| from_jwk(&jwk))
            {
                Ok(key) => keys.push(key),
                Err(e) => skipped.push(format!("key {i}: {e}")),
            }
        }
        Ok(Self { keys })
    }
}

fn from_jwk(jwk: &Jwk) -> Result<VerifyKey, String> {
    if let Some(jsonwebtoken::jwk::PublicKeyUse::Encryption) = jwk.common.public_key_use {
        return Err("encryption key (use: enc)".to_owned());
    }
    let declared = match jwk.common.key_algorithm {
        Some(a) => Some(
            Algorithm::from_str(&format!("{a:?}"))
                .map_err(|_| format!("algorithm {a:?} cannot sign"))?,
        ),
        None => None,
    };
    let curve_alg = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => Some(match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            ref other => return Err(format!("unsupported curve {other:?}")),
        }),
        AlgorithmParameters::OctetKeyPair(p) if p.curve != EllipticCurve::Ed25519 => {
            return Err(format!("unsupported curve {:?}", p.curve));
        }
        _ => None,
    };
    if let (Some(d), Some(c)) = (declared, curve_alg)
        && d != c
    {
        return Err(format!("alg {d:?} does not match the key's curve"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let alg = declared.or(curve_alg);
    if let Some(a) = alg
        && a.family() != key.family()
    {
        return Err(format!("alg {a:?} does not match the key type"));
    }
    Ok(VerifyKey {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

/// Reads one public key from PEM, trying each key type the algorithms allow.
pub(crate) fn from_pem(pem: &[u8], algorithms: &[Algorithm]) -> Result<VerifyKey, String> {
    let mut last = String::from("no asymmetric algorithm is allowed for a PEM key");
    for family in [
        AlgorithmFamily::Rsa,
        AlgorithmFamily::Ec,
        AlgorithmFamily::Ed,
    ] {
        if !algorithms.iter().any(|a| a.family() == family) {
            continue;
        }
        let parsed = match family {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
            _ => DecodingKey::from_ed_pem(pem),
        };
        match parsed {
            Ok(key) => {
                return Ok(VerifyKey {
                    kid: None,
                    alg: None,
                    key,
                });
            }
            Err(e) => last = format!("not a {family:?} public key: {e}"),
        }
    }
    Err(last)
}

/// A shared HMAC secret.
pub(crate) fn from_secret(secret: &[u8]) -> VerifyKey {
    VerifyKey {
        kid: None,
        alg: None,
        key: DecodingKey::from_secret(secret),
    }
}
