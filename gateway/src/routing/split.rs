//! Weighted choice between a route's upstreams (canary releases).
//!
//! The weights are turned into cumulative sums at compile time, so a choice is
//! one random number and a binary search; a route with one upstream draws no
//! random number at all. [`Upstreams::choose_with`] takes the random number as
//! a parameter so tests (and callers that want sticky choices, e.g. from a
//! hash of a user id) decide it.

use std::sync::Arc;

/// The upstream(s) a route sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    targets: Box<[Target]>,
    total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    name: Arc<str>,
    weight: u32,
    /// Sum of the weights up to and including this target.
    cumulative: u64,
}

impl Upstreams {
    /// A single upstream that receives everything.
    pub fn single(name: &str) -> Self {
        Self {
            targets: Box::new([Target {
                name: name.into(),
                weight: 1,
                cumulative: 1,
            }]),
            total: 1,
        }
    }

    /// Weighted upstreams; `None` if the weights add up to 0 or the list is empty.
    pub fn weighted<'a>(entries: impl IntoIterator<Item = (&'a str, u32)>) -> Option<Self> {
        let mut total = 0u64;
        let targets: Box<[Target]> = entries
            .into_iter()
            .map(|(name, weight)| {
                total += u64::from(weight);
                Target {
                    name: name.into(),
                    weight,
                    cumulative: total,
                }
            })
            .collect();
        (total > 0).then_some(Self { targets, total })
    }

    /// Picks an upstream with `fastrand`.
    pub fn choose(&self) -> &str {
        if self.targets.len() == 1 {
            return &self.targets[0].name;
        }
        self.choose_with(fastrand::u64(..self.total))
    }

    /// Picks the upstream that `roll` falls on; `roll` is reduced modulo
    /// [`total_weight`](Self::total_weight), so any uniformly random `u64`
    /// (or a value in `0..total_weight`) gives the configured distribution
    /// (up to the negligible modulo bias of a 64-bit roll).
    pub fn choose_with(&self, roll: u64) -> &str {
        let r = roll % self.total;
        let i = self.targets.partition_point(|t| t.cumulative <= r);
        // `r < total` and the last cumulative is `total`, so `i` is in range.
        &self.targets[i.min(self.targets.len() - 1)].name
    }

    /// Sum of all weights.
    pub fn total_weight(&self) -> u64 {
        self.total
    }

    /// Whether there is more than one upstream to choose from.
    pub fn is_split(&self) -> bool {
        self.targets.len() > 1
    }

    /// `(upstream, weight)` in configured order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.targets.iter().map(|t| (&*t.name, t.weight))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_needs_no_randomness() {
        let u = Upstreams::single("catalog");
        assert_eq!(u.choose(), "catalog");
        assert_eq!(u.choose_with(u64::MAX), "catalog");
        assert!(!u.is_split());
    }

    #[test]
    fn canary_95_5_boundaries() {
        let u = Upstreams::weighted([("stable", 95), ("canary", 5)]).unwrap();
        assert_eq!(u.total_weight(), 100);
        assert_eq!(u.choose_with(0), "stable");
        assert_eq!(u.choose_with(94), "stable");
        assert_eq!(u.choose_with(95), "canary");
        assert_eq!(u.choose_with(99), "canary");
        assert_eq!(u.choose_with(100), "stable");
    }

    #[test]
    fn distribution_over_every_roll_matches_weights() {
        let u = Upstreams::weighted([("a", 3), ("b", 0), ("c", 7)]).unwrap();
        let mut counts = [0u32; 3];
        for roll in 0..10_000 {
            match u.choose_with(roll) {
                "a" => counts[0] += 1,
                "b" => counts[1] += 1,
                "c" => counts[2] += 1,
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(counts, [3_000, 0, 7_000]);
    }

    #[test]
    fn random_choice_stays_near_weights() {
        fastrand::seed(7);
        let u = Upstreams::weighted([("stable", 95), ("canary", 5)]).unwrap();
        let canary = (0..20_000).filter(|_| u.choose() == "canary").count();
        assert!(
            (600..1_400).contains(&canary),
            "canary got {canary} of 20000"
        );
    }

    #[test]
    fn zero_total_is_rejected() {
        assert!(Upstreams::weighted([("a", 0), ("b", 0)]).is_none());
        assert!(Upstreams::weighted([]).is_none());
    }
}
