//! A small cache of API keys already verified: presented key → which stored
//! key it matched, so a client that sends its key on every request does not
//! cost a SHA-256 per request (about 3,500 instructions, most of the check).
//!
//! What it must not weaken, and how:
//! - **Only verified keys enter.** A key goes in after the SHA-256 path found
//!   it among the stored hashes; a wrong key is never written, so a flood of
//!   random keys neither grows the cache nor evicts what is in it.
//! - **Bounded.** A fixed number of slots (at most [`MAX_SLOTS`]), each
//!   holding one key of at most [`MAX_KEY_LEN`] bytes; a newer key that lands
//!   on an occupied slot replaces it. Longer keys are never cached (they take
//!   the SHA-256 path every time).
//! - **Constant time.** The slot is chosen by a hash of the presented key
//!   with a per-cache random seed (`proxy_core::hash::keyed`), so it says nothing about the
//!   stored keys; the presented key, zero-padded to [`MAX_KEY_LEN`], and its
//!   length are compared with the slot's in constant time, whatever the
//!   length and wherever they differ. A hit is faster than a miss, but a hit
//!   means the key is valid, which the response says anyway.
//! - **Per config generation.** The cache lives in the compiled key list, so
//!   a reload that removes a key starts from an empty cache that cannot know
//!   it.
//!
//! The cache holds the plaintext of keys recently accepted (they are in the
//! request buffers too); the configuration itself still holds only hashes.

use std::hash::BuildHasher;
use std::sync::{Mutex, TryLockError};

use subtle::ConstantTimeEq;

/// Keys longer than this are not cached.
pub(crate) const MAX_KEY_LEN: usize = 128;
/// The most slots a cache has, whatever the number of configured keys.
pub(crate) const MAX_SLOTS: usize = 256;

const WORDS: usize = MAX_KEY_LEN / 8;

/// A presented key as it is compared: zero-padded words and the length (so
/// `abc` and `abc\0` differ).
#[derive(Clone, Copy)]
struct Packed {
    len: u64,
    words: [u64; WORDS],
}

impl Packed {
    fn new(key: &[u8]) -> Option<Self> {
        if key.len() > MAX_KEY_LEN {
            return None;
        }
        let mut bytes = [0u8; MAX_KEY_LEN];
        bytes[..key.len()].copy_from_slice(key);
        let mut words = [0u64; WORDS];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        Some(Self {
            len: key.len() as u64,
            words,
        })
    }

    /// Equal in constant time: every word and the length are compared.
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.len.ct_eq(&other.len) & self.words[..].ct_eq(&other.words[..])
    }
}

#[derive(Clone, Copy)]
struct Slot {
    key: Packed,
    /// Index of the stored key it matched.
    index: usize,
}

/// See the module docs.
pub(crate) struct VerifiedKeys {
    slots: Box<[Mutex<Option<Slot>>]>,
    seed: proxy_core::hash::KeyedState,
}

impl VerifiedKeys {
    /// A cache sized for `stored` configured keys: twice as many slots (so
    /// two keys in use rarely share one), a power of two, at most
    /// [`MAX_SLOTS`]; none when no key is configured.
    pub(crate) fn for_keys(stored: usize) -> Self {
        let n = if stored == 0 {
            0
        } else {
            (stored * 2).next_power_of_two().clamp(4, MAX_SLOTS)
        };
        Self {
            slots: (0..n).map(|_| Mutex::new(None)).collect(),
            seed: proxy_core::hash::keyed(),
        }
    }

    /// The index of the stored key `presented` was verified against, if it
    /// is cached. Never waits: a slot another thread holds is a miss.
    pub(crate) fn get(&self, presented: &[u8]) -> Option<usize> {
        let key = Packed::new(presented)?;
        let slot = self.slot(presented)?;
        let guard = match slot.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock | TryLockError::Poisoned(_)) => return None,
        };
        let cached = guard.as_ref()?;
        bool::from(cached.key.ct_eq(&key)).then_some(cached.index)
    }

    /// Records that `presented` matched stored key `index`. Call only after
    /// verifying it against the stored hashes.
    pub(crate) fn insert(&self, presented: &[u8], index: usize) {
        let (Some(key), Some(slot)) = (Packed::new(presented), self.slot(presented)) else {
            return;
        };
        if let Ok(mut g) = slot.try_lock() {
            *g = Some(Slot { key, index });
        }
    }

    fn slot(&self, presented: &[u8]) -> Option<&Mutex<Option<Slot>>> {
        if self.slots.is_empty() {
            return None;
        }
        let h = self.seed.hash_one(presented) as usize;
        self.slots.get(h & (self.slots.len() - 1))
    }

    /// Slots holding a key (tests: the cache stays bounded).
    #[cfg(test)]
    pub(crate) fn occupied(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.lock().is_ok_and(|g| g.is_some()))
            .count()
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }
}

/// Says how big the cache is, never what it holds.
impl std::fmt::Debug for VerifiedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedKeys")
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_inserted_is_found_and_no_other() {
        let c = VerifiedKeys::for_keys(3);
        assert_eq!(c.get(b"k1"), None);
        c.insert(b"k1", 2);
        assert_eq!(c.get(b"k1"), Some(2));
        assert_eq!(c.get(b"k2"), None);
        assert_eq!(c.get(b"k1\0"), None, "the length is part of the key");
        assert_eq!(c.get(b""), None);
    }

    #[test]
    fn long_keys_and_empty_caches_are_never_hits() {
        let long = vec![b'x'; MAX_KEY_LEN + 1];
        let c = VerifiedKeys::for_keys(1);
        c.insert(&long, 0);
        assert_eq!(c.get(&long), None);
        assert_eq!(c.occupied(), 0);
        let exact = vec![b'y'; MAX_KEY_LEN];
        c.insert(&exact, 0);
        assert_eq!(c.get(&exact), Some(0));

        let none = VerifiedKeys::for_keys(0);
        none.insert(b"k", 0);
        assert_eq!(none.get(b"k"), None);
    }

    #[test]
    fn the_slot_count_is_bounded_whatever_the_keys() {
        assert_eq!(VerifiedKeys::for_keys(1).capacity(), 4);
        assert_eq!(VerifiedKeys::for_keys(5).capacity(), 16);
        assert_eq!(VerifiedKeys::for_keys(100_000).capacity(), MAX_SLOTS);
        let c = VerifiedKeys::for_keys(100_000);
        for i in 0..10 * MAX_SLOTS {
            c.insert(format!("key-{i}").as_bytes(), i);
        }
        assert!(c.occupied() <= MAX_SLOTS);
    }
}
