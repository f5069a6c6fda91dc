//! Verification keys: a parsed JWK set, a PEM file or a shared secret.
//!
//! Every key remembers which algorithms it may verify. A token is only checked
//! against keys whose algorithm family (and, when the JWK names one, exact
//! algorithm or curve) matches the token's `alg`, which is what rules out
//! algorithm confusion such as an HS256 token "signed" with an RSA public key.

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
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

/// Smallest RSA modulus accepted (RFC 7518 §3.3: 2048 bits or larger).
pub(crate) const MIN_RSA_BITS: usize = 2048;
/// Smallest symmetric JWK (`kty: oct`) accepted (RFC 7518 §3.2).
const MIN_OCT_BYTES: usize = 32;

fn from_jwk(jwk: &Jwk) -> Result<VerifyKey, String> {
    use jsonwebtoken::jwk::{KeyOperations, PublicKeyUse};
    // RFC 7517 §4.2/§4.3: a key meant for something else is not a
    // verification key, and `use` and `key_ops` must agree when both are set.
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(PublicKeyUse::Encryption) => return Err("encryption key (use: enc)".to_owned()),
        Some(PublicKeyUse::Other(u)) => return Err(format!("key for use {u:?}, not sig")),
    }
    if let Some(ops) = &jwk.common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return Err("key_ops does not include verify".to_owned());
        }
        if jwk.common.public_key_use.is_some()
            && ops
                .iter()
                .any(|o| !matches!(o, KeyOperations::Verify | KeyOperations::Sign))
        {
            return Err("use: sig contradicts key_ops".to_owned());
        }
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let bits = URL_SAFE_NO_PAD
                .decode(&p.n)
                .map(|n| bit_length(&n))
                .map_err(|_| "RSA modulus is not base64url".to_owned())?;
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
                ));
            }
        }
        AlgorithmParameters::OctetKey(p) => {
            let len = URL_SAFE_NO_PAD.decode(&p.value).map_or(0, |k| k.len());
            if len < MIN_OCT_BYTES {
                return Err(format!(
                    "symmetric key of {len} bytes; at least {MIN_OCT_BYTES} are required"
                ));
            }
        }
        _ => {}
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
                if family == AlgorithmFamily::Rsa {
                    let bits = rsa_pem_bits(pem)
                        .ok_or_else(|| "cannot read the RSA modulus".to_owned())?;
                    if bits < MIN_RSA_BITS {
                        return Err(format!(
                            "RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
                        ));
                    }
                }
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

/// Bits of a big-endian unsigned integer, leading zeros not counted.
fn bit_length(n: &[u8]) -> usize {
    match n.iter().position(|&b| b != 0) {
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
        None => 0,
    }
}

/// The modulus size of an RSA public key in PEM, either a
/// `SubjectPublicKeyInfo` (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC
/// KEY`). jsonwebtoken has parsed the key already; this only walks the DER
/// to the modulus.
fn rsa_pem_bits(pem: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(pem).ok()?;
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .map(str::trim)
        .collect();
    let der = STANDARD.decode(body).ok()?;
    let (tag, outer, _) = der_tlv(&der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, first, rest) = der_tlv(outer)?;
    let rsa_key = match tag {
        // PKCS#1 RSAPublicKey: SEQUENCE { INTEGER n, INTEGER e }.
        0x02 => return Some(bit_length(first)),
        // SPKI: SEQUENCE { AlgorithmIdentifier, BIT STRING { RSAPublicKey } }.
        0x30 => {
            let (tag, bits, _) = der_tlv(rest)?;
            if tag != 0x03 {
                return None;
            }
            bits.get(1..)?
        }
        _ => return None,
    };
    let (tag, seq, _) = der_tlv(rsa_key)?;
    let (tag_n, n, _) = der_tlv(seq)?;
    (tag == 0x30 && tag_n == 0x02).then(|| bit_length(n))
}

/// One DER tag-length-value: (tag, contents, what follows).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_modulus_sizes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
        let spki = std::fs::read(dir.join("rsa-a.pub.pem")).unwrap();
        assert_eq!(rsa_pem_bits(&spki), Some(2048));
        assert_eq!(bit_length(&[0, 0x01, 0]), 9);
        assert_eq!(bit_length(&[0x80]), 8);
        assert_eq!(bit_length(&[]), 0);
        assert!(der_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(der_tlv(&[0x30, 0x05, 1]).is_none());
    }
}
