//! `auth.failure_limit`: how fast one client address may fail authentication.

use serde::{Deserialize, Serialize};

use super::HumanDuration;

/// A GCRA limit on *failed* authentications per client address, checked
/// before any credential is: a client over it gets 429 without its key or
/// token being looked at, so guessing is slowed and a flood of bad
/// credentials costs no verification work. Successful requests spend nothing.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFailureLimitConfig {
    /// On by default; `false` turns the throttle off.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Failures per `per` once the burst is spent.
    #[serde(default = "default_rate")]
    pub rate: u64,
    #[serde(default = "default_per")]
    pub per: HumanDuration,
    /// Failures allowed at once from a clean record.
    #[serde(default = "default_burst")]
    pub burst: u64,
    /// Most client addresses tracked (bounds memory, ~50 bytes each).
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

impl Default for AuthFailureLimitConfig {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            rate: default_rate(),
            per: default_per(),
            burst: default_burst(),
            max_keys: default_max_keys(),
        }
    }
}

fn default_enabled() -> bool {
    true
}

fn default_rate() -> u64 {
    60
}

fn default_per() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_burst() -> u64 {
    30
}

fn default_max_keys() -> usize {
    100_000
}
