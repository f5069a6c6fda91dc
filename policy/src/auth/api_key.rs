//! API keys, stored as SHA-256 hashes and compared in constant time, with
//! the keys already verified cached so a repeat caller skips the hash.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::verified_keys::VerifiedKeys;

/// One known key: the hash of the key, never the key.
#[derive(Clone, Debug)]
pub(crate) struct StoredKey {
    pub(crate) hash: [u8; 32],
    pub(crate) name: Arc<str>,
    pub(crate) scopes: Arc<[String]>,
}

/// All configured API keys of one config generation.
#[derive(Debug)]
pub(crate) struct ApiKeys {
    keys: Vec<StoredKey>,
    /// Presented keys already verified (see [`VerifiedKeys`]); one per
    /// generation, so a reload that removes a key forgets it too.
    verified: VerifiedKeys,
}

impl ApiKeys {
    pub(crate) fn new(keys: Vec<StoredKey>) -> Self {
        Self {
            verified: VerifiedKeys::for_keys(keys.len()),
            keys,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Finds the stored key the presented key is: from the cache of keys
    /// already verified, else by its SHA-256 (then cached).
    pub(crate) fn lookup(&self, presented: &str) -> Option<&StoredKey> {
        if let Some(i) = self.verified.get(presented.as_bytes()) {
            return self.keys.get(i);
        }
        let i = self.lookup_hashed(presented)?;
        self.verified.insert(presented.as_bytes(), i);
        self.keys.get(i)
    }

    /// The index of the key whose hash matches the presented key's hash.
    ///
    /// Every stored hash is compared, each with `subtle`'s constant-time
    /// equality, and the match is selected without branching, so the time taken
    /// says nothing about which key (or how much of a hash) matched.
    fn lookup_hashed(&self, presented: &str) -> Option<usize> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, key) in self.keys.iter().enumerate() {
            let eq = key.hash.ct_eq(&digest);
            index.conditional_assign(&(i as u64), eq);
            found |= eq;
        }
        bool::from(found).then_some(index as usize)
    }
}

/// Parses a lowercase or uppercase 64-digit hex SHA-256.
pub(crate) fn parse_hash(hex_str: &str) -> Result<[u8; 32], String> {
    // The decoder's message quotes the offending character: keep it out.
    let bytes = hex::decode(hex_str.trim())
        .map_err(|_| "not hex; write the SHA-256 of the key as 64 hex digits".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "{} bytes; a SHA-256 is 32 bytes (64 hex digits)",
            bytes.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        let mk = |key: &str, name: &str| StoredKey {
            hash: Sha256::digest(key.as_bytes()).into(),
            name: name.into(),
            scopes: Arc::from(vec!["a".to_owned()]),
        };
        ApiKeys::new(vec![mk("k1", "one"), mk("k2", "two"), mk("k3", "three")])
    }

    #[test]
    fn finds_each_key_and_rejects_others() {
        let k = keys();
        assert_eq!(&*k.lookup("k1").unwrap().name, "one");
        assert_eq!(&*k.lookup("k3").unwrap().name, "three");
        assert_eq!(&*k.lookup("k2").unwrap().name, "two");
        assert!(k.lookup("k4").is_none());
        assert!(k.lookup("").is_none());
        assert!(ApiKeys::new(Vec::new()).lookup("k1").is_none());
    }

    #[test]
    fn a_verified_key_is_cached_and_still_found() {
        let k = keys();
        assert_eq!(k.verified.get(b"k2"), None);
        assert_eq!(&*k.lookup("k2").unwrap().name, "two");
        assert_eq!(k.verified.get(b"k2"), Some(1), "cached after the hash");
        for _ in 0..3 {
            assert_eq!(&*k.lookup("k2").unwrap().name, "two");
        }
        assert!(k.lookup("k2 ").is_none());
        assert!(k.lookup("K2").is_none());
    }

    #[test]
    fn a_flood_of_wrong_keys_is_never_cached() {
        let k = keys();
        assert!(k.lookup("k1").is_some());
        for i in 0..10_000 {
            assert!(k.lookup(&format!("wrong-{i}")).is_none());
        }
        assert_eq!(k.verified.occupied(), 1, "only the valid key is held");
        assert_eq!(k.verified.get(b"k1"), Some(0), "and it was not evicted");
        assert!(k.verified.capacity() <= super::super::verified_keys::MAX_SLOTS);
    }

    #[test]
    fn parses_hashes() {
        let h = hex::encode(Sha256::digest(b"demo-key"));
        assert_eq!(
            h,
            "c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c"
        );
        assert!(parse_hash(&h).is_ok());
        assert!(parse_hash(&h.to_uppercase()).is_ok());
        assert!(parse_hash("abc").is_err());
        assert!(parse_hash(&h[..62]).is_err());
    }
}
