//! The `timeouts`, `retry` and `circuit_breaker` sections of a destination, as
//! written in the file, and their validation into the typed settings the layers
//! take. Every section has safe defaults, so `retry: {}` means "the defaults".
//!
//! ```yaml
//! timeouts: { connect: 300ms, per_try: 2s, overall: 5s }
//! retry:
//!   on: [connect_error, 502, 503, 504, grpc_unavailable]
//!   max_attempts: 3
//!   backoff: { base: 25ms, max: 250ms }       # full jitter
//!   budget: { ratio: 0.2, min_per_second: 10, window: 10s }
//!   non_idempotent: false
//!   max_replay_body: 64KiB
//! circuit_breaker:
//!   consecutive_failures: 5
//!   success_rate: { threshold: 0.8, window: 10s, min_requests: 20 }
//!   ejection: { base: 1s, max: 1m, max_percent: 50 }
//! ```

use std::fmt;
use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::breaker::{BreakerSettings, EjectionBackoff, SuccessRate};
use super::budget::BudgetSettings;
use super::classify::grpc;
use super::retry::RetryPolicy;
use crate::config::{ByteSize, ConfigErrors, HumanDuration};

/// `timeouts:` of a destination.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConfig {
    /// Establishing one connection.
    pub connect: HumanDuration,
    /// One try, until the response head.
    pub per_try: Option<HumanDuration>,
    /// All tries and backoffs together.
    pub overall: Option<HumanDuration>,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            connect: HumanDuration::from_secs(1),
            per_try: None,
            overall: None,
        }
    }
}

/// One entry of `retry.on`: a status (`503`) or a named condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOn {
    /// `connect_error`: the connection could not be made.
    ConnectError,
    /// A response status (5xx or 429).
    Status(u16),
    /// `grpc_unavailable`, `grpc_resource_exhausted`, `grpc_internal`,
    /// `grpc_deadline_exceeded`, `grpc_cancelled`.
    Grpc(u32),
}

const GRPC_NAMES: &[(&str, u32)] = &[
    ("grpc_cancelled", 1),
    ("grpc_deadline_exceeded", grpc::DEADLINE_EXCEEDED),
    ("grpc_resource_exhausted", grpc::RESOURCE_EXHAUSTED),
    ("grpc_internal", grpc::INTERNAL),
    ("grpc_unavailable", grpc::UNAVAILABLE),
];

impl fmt::Display for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryOn::ConnectError => f.write_str("connect_error"),
            RetryOn::Status(s) => write!(f, "{s}"),
            RetryOn::Grpc(c) => {
                let name = GRPC_NAMES
                    .iter()
                    .find(|(_, n)| n == c)
                    .map_or("grpc_unknown", |(s, _)| s);
                f.write_str(name)
            }
        }
    }
}

impl<'de> Deserialize<'de> for RetryOn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u16),
            Str(String),
        }
        let bad = |what: &str| {
            serde::de::Error::custom(format!(
                "invalid retry condition {what:?}; use a status 500-599 or 429, connect_error, or {}",
                GRPC_NAMES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        };
        match Raw::deserialize(d)? {
            Raw::Int(s) if (500..=599).contains(&s) || s == 429 => Ok(RetryOn::Status(s)),
            Raw::Int(s) => Err(bad(&s.to_string())),
            Raw::Str(s) => {
                let t = s.trim();
                if t == "connect_error" {
                    return Ok(RetryOn::ConnectError);
                }
                if let Ok(n) = t.parse::<u16>()
                    && ((500..=599).contains(&n) || n == 429)
                {
                    return Ok(RetryOn::Status(n));
                }
                GRPC_NAMES
                    .iter()
                    .find(|(n, _)| *n == t)
                    .map(|(_, c)| RetryOn::Grpc(*c))
                    .ok_or_else(|| bad(t))
            }
        }
    }
}

impl Serialize for RetryOn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RetryOn::Status(n) => s.serialize_u16(*n),
            other => s.collect_str(other),
        }
    }
}

/// `retry.backoff:`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    pub base: HumanDuration,
    pub max: HumanDuration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: HumanDuration::from_millis(25),
            max: HumanDuration::from_millis(250),
        }
    }
}

/// `retry.budget:`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    pub ratio: f64,
    pub min_per_second: u32,
    pub window: HumanDuration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        let d = BudgetSettings::default();
        BudgetConfig {
            ratio: d.ratio,
            min_per_second: d.min_per_second,
            window: HumanDuration(d.window),
        }
    }
}

/// `retry:` of a destination.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub on: Vec<RetryOn>,
    /// Tries in total, the first included.
    pub max_attempts: u32,
    pub backoff: BackoffConfig,
    pub budget: BudgetConfig,
    /// Retry POST/PATCH too (only for destinations that deduplicate).
    pub non_idempotent: bool,
    pub max_replay_body: ByteSize,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            on: vec![
                RetryOn::ConnectError,
                RetryOn::Status(502),
                RetryOn::Status(503),
                RetryOn::Status(504),
                RetryOn::Grpc(grpc::UNAVAILABLE),
            ],
            max_attempts: 3,
            backoff: BackoffConfig::default(),
            budget: BudgetConfig::default(),
            non_idempotent: false,
            max_replay_body: ByteSize::kib(64),
        }
    }
}

impl RetryConfig {
    /// Validates into the layer's policy and budget settings, reporting every
    /// problem under `path` (e.g. `services.payment.retry`).
    pub fn validate(&self, path: &str, errs: &mut ConfigErrors) -> (RetryPolicy, BudgetSettings) {
        if self.max_attempts == 0 || self.max_attempts > 10 {
            errs.push(format!("{path}.max_attempts"), "must be between 1 and 10");
        }
        if self.backoff.base.get() > self.backoff.max.get() {
            errs.push(
                format!("{path}.backoff.base"),
                "must not exceed backoff.max",
            );
        }
        let b = &self.budget;
        if !(0.0..=10.0).contains(&b.ratio) || b.ratio.is_nan() {
            errs.push(
                format!("{path}.budget.ratio"),
                "must be between 0.0 and 10.0",
            );
        }
        if b.window.get() < Duration::from_secs(1) || b.window.get() > Duration::from_secs(3600) {
            errs.push(format!("{path}.budget.window"), "must be between 1s and 1h");
        }
        let policy = RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            on_connect_error: self.on.contains(&RetryOn::ConnectError),
            statuses: self
                .on
                .iter()
                .filter_map(|o| match o {
                    RetryOn::Status(s) => StatusCode::from_u16(*s).ok(),
                    _ => None,
                })
                .collect(),
            grpc_codes: self
                .on
                .iter()
                .filter_map(|o| match o {
                    RetryOn::Grpc(c) => Some(*c),
                    _ => None,
                })
                .collect(),
            backoff_base: self.backoff.base.get(),
            backoff_max: self.backoff.max.get(),
            non_idempotent: self.non_idempotent,
            max_replay_body: self.max_replay_body.as_usize(),
        };
        let budget = BudgetSettings {
            ratio: b.ratio,
            min_per_second: b.min_per_second,
            window: b.window.get(),
        };
        (policy, budget)
    }
}

/// `circuit_breaker.success_rate:`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SuccessRateConfig {
    pub threshold: f64,
    #[serde(default = "ten_seconds")]
    pub window: HumanDuration,
    #[serde(default = "twenty")]
    pub min_requests: u32,
}

fn ten_seconds() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn twenty() -> u32 {
    20
}

/// `circuit_breaker.ejection:`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EjectionConfig {
    pub base: HumanDuration,
    pub max: HumanDuration,
    pub max_percent: u8,
}

impl Default for EjectionConfig {
    fn default() -> Self {
        EjectionConfig {
            base: HumanDuration::from_secs(1),
            max: HumanDuration::from_secs(60),
            max_percent: 50,
        }
    }
}

/// `circuit_breaker:` of a destination.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    /// Failures in a row that eject an endpoint (0 disables).
    pub consecutive_failures: u32,
    pub success_rate: Option<SuccessRateConfig>,
    pub ejection: EjectionConfig,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            consecutive_failures: 5,
            success_rate: None,
            ejection: EjectionConfig::default(),
        }
    }
}

impl CircuitBreakerConfig {
    /// Validates into the detector's settings, reporting problems under `path`.
    pub fn validate(&self, path: &str, errs: &mut ConfigErrors) -> BreakerSettings {
        if let Some(sr) = &self.success_rate {
            if !(0.0..=1.0).contains(&sr.threshold) || sr.threshold.is_nan() {
                errs.push(
                    format!("{path}.success_rate.threshold"),
                    "must be between 0.0 and 1.0",
                );
            }
            if sr.window.get() < Duration::from_secs(1) {
                errs.push(format!("{path}.success_rate.window"), "must be at least 1s");
            }
            if sr.min_requests == 0 {
                errs.push(
                    format!("{path}.success_rate.min_requests"),
                    "must be at least 1",
                );
            }
        }
        let e = &self.ejection;
        if e.base.get().is_zero() {
            errs.push(format!("{path}.ejection.base"), "must be more than 0s");
        }
        if e.base.get() > e.max.get() {
            errs.push(
                format!("{path}.ejection.base"),
                "must not exceed ejection.max",
            );
        }
        if e.max_percent > 100 {
            errs.push(
                format!("{path}.ejection.max_percent"),
                "must be between 0 and 100",
            );
        }
        BreakerSettings {
            consecutive_failures: (self.consecutive_failures > 0)
                .then_some(self.consecutive_failures),
            success_rate: self.success_rate.as_ref().map(|sr| SuccessRate {
                threshold: sr.threshold,
                window: sr.window.get(),
                min_requests: sr.min_requests,
            }),
            ejection_base: e.base.get(),
            backoff: EjectionBackoff::Linear,
            ejection_max: e.max.get(),
            max_percent: e.max_percent.min(100),
        }
    }
}

impl TimeoutsConfig {
    /// Checks the timeouts' relations, reporting problems under `path`.
    pub fn validate(&self, path: &str, errs: &mut ConfigErrors) {
        if self.connect.get().is_zero() {
            errs.push(format!("{path}.connect"), "must be more than 0s");
        }
        if let (Some(p), Some(o)) = (self.per_try, self.overall)
            && p.get() > o.get()
        {
            errs.push(
                format!("{path}.per_try"),
                "must not exceed timeouts.overall",
            );
        }
        for (name, v) in [("per_try", self.per_try), ("overall", self.overall)] {
            if v.is_some_and(|d| d.get().is_zero()) {
                errs.push(format!("{path}.{name}"), "must be more than 0s");
            }
        }
    }
}

#[cfg(test)]
mod tests;
