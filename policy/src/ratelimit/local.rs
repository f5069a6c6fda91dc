//! The in-memory limiter: GCRA state in N shards so cores do not contend on
//! one lock, with idle keys forgotten so memory stays bounded.
//!
//! Keys are reduced to a 64-bit hash with a random seed from the operating
//! system (`proxy_core::hash::keyed`: foldhash, so clients cannot aim
//! collisions, at a fraction of SipHash's cost); the map stores hash -> TAT, 16 bytes a key.
//! A TAT in the past is the same as no entry (see `gcra.rs`), so sweeping those
//! out never changes a decision. When a flood of distinct keys fills a shard
//! with live entries anyway, the ones closest to expiry are evicted first.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};

use tokio::time::Instant;

use super::gcra::{self, Decision, Quota};

/// The map's keys are already uniformly random hashes: hash them as themselves.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map = HashMap<u64, u64, BuildHasherDefault<IdentityHasher>>;

struct Shard {
    map: Map,
    /// Sweep when the map reaches this size (amortizes sweeps to O(1) a request).
    next_sweep: usize,
}

/// One policy's (or one fallback's) local state.
pub struct LocalLimiter {
    quota: Quota,
    shards: Box<[Mutex<Shard>]>,
    seed: proxy_core::hash::KeyedState,
    epoch: Instant,
    max_per_shard: usize,
}

impl LocalLimiter {
    /// `max_keys` bounds the keys held (split evenly across shards).
    pub fn new(quota: Quota, max_keys: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let n = (cores * 4).next_power_of_two().clamp(16, 256);
        let max_per_shard = max_keys.div_ceil(n).max(16);
        let shards = (0..n)
            .map(|_| {
                Mutex::new(Shard {
                    map: Map::default(),
                    next_sweep: 64.min(max_per_shard),
                })
            })
            .collect();
        Self {
            quota,
            shards,
            seed: proxy_core::hash::keyed(),
            epoch: Instant::now(),
            max_per_shard,
        }
    }

    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Decides one request for `key` now.
    pub fn check(&self, key: &str) -> Decision {
        self.check_at(key, Instant::now())
    }

    /// What a request for `key` would be told now, without recording it.
    pub fn peek(&self, key: &str) -> Decision {
        let now = Instant::now();
        let (shard, h) = self.slot(key);
        let stored = self.lock(shard).map.get(&h).copied();
        gcra::decide(&self.quota, stored, self.now_ns(now)).0
    }

    /// Decides one request for `key` at `now` (tests drive the clock).
    pub fn check_at(&self, key: &str, now: Instant) -> Decision {
        let (idx, h) = self.slot(key);
        let now_ns = self.now_ns(now);
        let mut shard = self.lock(idx);
        let (decision, tat) = gcra::decide(&self.quota, shard.map.get(&h).copied(), now_ns);
        if decision.allowed {
            if shard.map.len() >= shard.next_sweep && !shard.map.contains_key(&h) {
                sweep(&mut shard, now_ns, self.max_per_shard);
            }
            shard.map.insert(h, tat);
        }
        decision
    }

    fn slot(&self, key: &str) -> (usize, u64) {
        let h = self.seed.hash_one(key);
        // Middle bits pick the shard; the map uses the low bits for buckets
        // and the top bits for its tags.
        ((((h >> 32) as usize) & (self.shards.len() - 1)), h)
    }

    fn now_ns(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        match self.shards[shard].lock() {
            Ok(g) => g,
            // A panic elsewhere while holding the lock cannot leave a TAT half
            // written (it is one u64): the data is still good.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Keys currently held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |g| g.map.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most keys this limiter will hold.
    pub fn capacity(&self) -> usize {
        self.max_per_shard * self.shards.len()
    }
}

/// Decides one request against several limits at once: every key is checked,
/// and the request is recorded in every limit only if all of them admit it,
/// so a request one limit refuses spends nothing of the others.
///
/// Every shard involved is locked before anything is read, in one global
/// order (limiter address, then shard), so concurrent calls neither deadlock
/// nor see one another half way: the check and the commit are one step.
pub fn check_all(entries: &[(&LocalLimiter, &str)]) -> Vec<Decision> {
    check_all_at(entries, Instant::now())
}

/// [`check_all`] at a given instant (tests drive the clock).
pub fn check_all_at(entries: &[(&LocalLimiter, &str)], now: Instant) -> Vec<Decision> {
    // One limit: check and commit are already one step under its lock.
    if let [(limiter, key)] = entries {
        return vec![limiter.check_at(key, now)];
    }
    // (limiter address, shard, entry index), sorted into the lock order.
    let slots: Vec<(usize, u64)> = entries.iter().map(|(l, k)| l.slot(k)).collect();
    let mut order: Vec<(usize, usize, usize)> = entries
        .iter()
        .zip(&slots)
        .enumerate()
        .map(|(i, ((l, _), (shard, _)))| (std::ptr::from_ref(*l) as usize, *shard, i))
        .collect();
    order.sort_unstable();
    // One guard per distinct shard; `guard_of[i]` is entry i's guard.
    let mut guards: Vec<MutexGuard<'_, Shard>> = Vec::with_capacity(order.len());
    let mut guard_of = vec![0; entries.len()];
    let mut last: Option<(usize, usize)> = None;
    for &(addr, shard, i) in &order {
        if last != Some((addr, shard)) {
            guards.push(entries[i].0.lock(shard));
            last = Some((addr, shard));
        }
        guard_of[i] = guards.len() - 1;
    }
    // Decide each entry; a key met twice sees its earlier tentative TAT.
    let mut pending: Vec<(usize, u64, u64)> = Vec::with_capacity(entries.len());
    let mut decisions = Vec::with_capacity(entries.len());
    for (i, (limiter, _)) in entries.iter().enumerate() {
        let (g, h) = (guard_of[i], slots[i].1);
        let stored = pending
            .iter()
            .rev()
            .find(|(pg, ph, _)| (*pg, *ph) == (g, h))
            .map(|p| p.2)
            .or_else(|| guards[g].map.get(&h).copied());
        let (decision, tat) = gcra::decide(&limiter.quota, stored, limiter.now_ns(now));
        if decision.allowed {
            pending.push((g, h, tat));
        }
        decisions.push(decision);
    }
    if decisions.iter().all(|d| d.allowed) {
        for (i, (limiter, _)) in entries.iter().enumerate() {
            let (g, h) = (guard_of[i], slots[i].1);
            let Some(&(_, _, tat)) = pending
                .iter()
                .rev()
                .find(|(pg, ph, _)| (*pg, *ph) == (g, h))
            else {
                continue;
            };
            let shard = &mut guards[g];
            if shard.map.len() >= shard.next_sweep && !shard.map.contains_key(&h) {
                sweep(shard, limiter.now_ns(now), limiter.max_per_shard);
            }
            shard.map.insert(h, tat);
        }
    } else {
        for (d, (limiter, _)) in decisions.iter_mut().zip(entries) {
            if d.allowed {
                *d = gcra::uncharged(&limiter.quota, *d);
            }
        }
    }
    decisions
}

fn sweep(shard: &mut Shard, now_ns: u64, max: usize) {
    shard.map.retain(|_, tat| *tat > now_ns);
    if shard.map.len() >= max {
        // Still full of live keys: drop the quarter closest to expiry (their
        // buckets are the nearest to full anyway). Counted exactly, so equal
        // TATs cannot turn the eviction into a flush.
        let excess = shard.map.len() - max * 3 / 4;
        let mut tats: Vec<u64> = shard.map.values().copied().collect();
        let (_, &mut threshold, _) = tats.select_nth_unstable(excess - 1);
        let below = tats.iter().filter(|&&t| t < threshold).count();
        let mut ties = excess - below;
        shard.map.retain(|_, tat| {
            if *tat < threshold {
                false
            } else if *tat == threshold && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        });
    }
    shard.next_sweep = (shard.map.len() * 2).clamp(64.min(max), max);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn counts_per_key() {
        let l = LocalLimiter::new(Quota::new(10, Duration::from_secs(1), 3).unwrap(), 1000);
        let t = Instant::now();
        let a = (0..10).filter(|_| l.check_at("a", t).allowed).count();
        let b = (0..10).filter(|_| l.check_at("b", t).allowed).count();
        assert_eq!((a, b), (3, 3));
        assert!(l.check_at("a", t + Duration::from_millis(100)).allowed);
        assert!(!l.check_at("a", t + Duration::from_millis(100)).allowed);
    }

    #[test]
    fn several_limits_are_charged_together_or_not_at_all() {
        let wide = LocalLimiter::new(Quota::new(1, Duration::from_secs(3600), 10).unwrap(), 100);
        let narrow = LocalLimiter::new(Quota::new(1, Duration::from_secs(3600), 2).unwrap(), 100);
        let t = Instant::now();
        let both = [(&wide, "k"), (&narrow, "k")];
        let admitted = (0..10)
            .filter(|_| check_all_at(&both, t).iter().all(|d| d.allowed))
            .count();
        assert_eq!(admitted, 2);
        // wide paid for the 2 admitted only.
        let d = check_all_at(&both, t);
        assert!(d[0].allowed && !d[1].allowed);
        assert_eq!(d[0].remaining, 8, "reported as it stays");
        assert_eq!((0..20).filter(|_| wide.check_at("k", t).allowed).count(), 8);
        // The same limiter and key twice in one call: two requests' worth.
        let l = LocalLimiter::new(Quota::new(1, Duration::from_secs(3600), 3).unwrap(), 100);
        assert!(
            check_all_at(&[(&l, "x"), (&l, "x")], t)
                .iter()
                .all(|d| d.allowed)
        );
        let d = check_all_at(&[(&l, "x"), (&l, "x")], t);
        assert!(d[0].allowed && !d[1].allowed);
        assert!(l.check_at("x", t).allowed, "the refused pair spent nothing");
    }

    #[test]
    fn idle_keys_are_swept() {
        let l = LocalLimiter::new(
            Quota::new(1000, Duration::from_secs(1), 1).unwrap(),
            1_000_000,
        );
        let t = Instant::now();
        for i in 0..100_000u32 {
            // 1ms apart: each key's TAT expires 1ms later, before most others arrive.
            l.check_at(&i.to_string(), t + Duration::from_millis(u64::from(i)));
        }
        assert!(l.len() < 20_000, "{}", l.len());
    }
}
