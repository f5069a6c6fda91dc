//! Hashers for maps and hashes on the request path.
//!
//! std's default, SipHash-1-3, cost the gateway about 3,400 instructions a
//! request over a handful of lookups; foldhash (what hashbrown uses) does the
//! same work for a fraction. Both flavours here take their seeds from std's
//! `RandomState`, which keys SipHash from the operating system's generator,
//! so no hash can be predicted from outside the process (foldhash's own
//! seeding mixes only addresses and, with its `std` feature, the time):
//!
//! - [`FastMap`]: maps whose keys the configuration picks (endpoint
//!   addresses, route and upstream names, path segments of routes). A client
//!   may look any key up but never adds one.
//! - [`keyed`]: hashes of keys a client picks (rate-limit keys made of
//!   addresses, headers, consumers; presented API keys), with foldhash's
//!   quality variant, whose every output bit depends on every input bit.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::OnceLock;

use foldhash::SharedSeed;

/// A `HashMap` for keys that come from the configuration (see the module docs).
pub type FastMap<K, V> = HashMap<K, V, FastState>;

/// foldhash (fast), seeded from the operating system: the hasher of [`FastMap`].
#[derive(Clone, Debug)]
pub struct FastState(foldhash::fast::SeedableRandomState);

impl Default for FastState {
    fn default() -> Self {
        Self(foldhash::fast::SeedableRandomState::with_seed(
            os_random_u64(),
            shared_seed(),
        ))
    }
}

impl BuildHasher for FastState {
    type Hasher = foldhash::fast::FoldHasher<'static>;

    #[inline]
    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// The hasher for keys a client chooses: foldhash (quality), seeded from
/// the operating system (see [`keyed`]).
pub type KeyedState = foldhash::quality::SeedableRandomState;

/// A [`KeyedState`] with its own seed over the process-wide shared one.
pub fn keyed() -> KeyedState {
    KeyedState::with_seed(os_random_u64(), shared_seed())
}

/// foldhash's larger seed, drawn once per process.
fn shared_seed() -> &'static SharedSeed {
    static SHARED: OnceLock<SharedSeed> = OnceLock::new();
    SHARED.get_or_init(|| SharedSeed::from_u64(os_random_u64()))
}

/// 64 bits no one outside the process can predict: std's `RandomState` keys
/// SipHash from the operating system's generator (once per thread, then
/// incremented), and SipHash is a PRF, so its output under a fresh key is.
fn os_random_u64() -> u64 {
    std::hash::RandomState::new().hash_one(0x5745_4952_u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hashers_differ_and_each_is_stable() {
        let (a, b) = (keyed(), keyed());
        assert_eq!(a.hash_one("10.0.0.1"), a.hash_one("10.0.0.1"));
        assert_ne!(a.hash_one("10.0.0.1"), b.hash_one("10.0.0.1"));
        assert_ne!(os_random_u64(), os_random_u64());
    }

    #[test]
    fn fast_maps_work_as_maps() {
        let mut m: FastMap<Box<str>, u32> = FastMap::default();
        m.insert("127.0.0.1:8080".into(), 1);
        assert_eq!(m.get("127.0.0.1:8080"), Some(&1));
        assert_eq!(m.get("127.0.0.1:8081"), None);
    }
}
