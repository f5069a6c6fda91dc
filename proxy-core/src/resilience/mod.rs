//! Resilience layers: timeouts, retries with a budget, and per-endpoint outlier
//! ejection (circuit breaking).
//!
//! Each layer is a small tower middleware in its own folder with its unit tests.
//! The sidecar composes them, outermost first, as (its `build_stack` is the one
//! place that order is written):
//!
//! ```text
//! overall Timeout → Retry (+ RetryBudget) → balancer → Breaker → per-try Timeout → pool
//! ```
//!
//! Retries sit above the balancer so a retried request may pick another endpoint;
//! the breaker sits below it because ejection is per endpoint; the per-try timeout
//! sits inside the retry loop so a hung try becomes a retryable 504, and under
//! the breaker so that 504 counts against the endpoint.
//!
//! # Layout
//!
//! - [`config`]: the serde shape of the `timeouts`, `retry` and `circuit_breaker`
//!   sections, validated into the typed settings the layers take.
//! - [`timeout`]: per-try and overall deadlines ([`TimeoutError`] maps to 504).
//! - [`retry`]: the retry loop, bounded body replay, gRPC-aware classification.
//! - [`budget`]: the retry budget (ratio of live requests plus a floor).
//! - [`breaker`]: consecutive-failure and success-rate ejection with half-open probes.
//! - [`classify`]: what counts as a failure, shared by retry and breaker.

pub mod breaker;
pub mod budget;
pub mod classify;
pub mod config;
pub mod retry;
pub mod timeout;
mod window;

pub use breaker::{
    Admission, Breaker, BreakerHook, BreakerLayer, BreakerSettings, BreakerState, CircuitOpen,
    EjectionBackoff, EndpointHealth, EndpointSnapshot, OutlierDetector, SuccessRate,
};
pub use budget::{BudgetSettings, RetryBudget};
pub use classify::{ErrorClass, classify_error, error_status};
pub use retry::{
    ATTEMPTS_HEADER, Attempt, PeekBody, ReplayBody, RetriesExhausted, Retry, RetryEvent, RetryHook,
    RetryLayer, RetryPolicy, RetryReason,
};
pub use timeout::{Timeout, TimeoutError, TimeoutKind, TimeoutLayer};

/// The error type every resilience layer returns: the inner service's error,
/// boxed, or one of this module's own errors ([`TimeoutError`], [`CircuitOpen`]).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
