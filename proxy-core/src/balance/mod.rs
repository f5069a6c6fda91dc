//! Endpoint sets and load balancing.
//!
//! An [`EndpointGroup`] is everything a proxy knows about one upstream's
//! endpoints: the current set (static, or re-resolved from DNS), each
//! endpoint's load, latency and health, and the policy that picks one per
//! request. Picking takes no lock: the set is an `ArcSwap`, the counters atomics.
//! Each endpoint's ejection state is the one of `resilience::breaker`, kept by
//! the group's `OutlierDetector`.
//!
//! # Layout
//!
//! - `endpoint.rs`: one endpoint's load, latency, health and ejection state.
//! - `group.rs`: the set, its detector and its background tasks.
//! - `pick.rs`: the policies (round robin, P2C, P2C-EWMA).
//! - `service.rs`: [`Balance`], the policy as a tower service over endpoint
//!   stacks built once per endpoint.
//! - `discovery.rs`, `health.rs`: DNS refresh and active health checks;
//!   `grpc_health.rs`: the gRPC health checking protocol as such a check.

mod discovery;
mod endpoint;
mod group;
mod grpc_health;
mod health;
mod pick;
mod service;

pub use endpoint::{Endpoint, InFlight};
pub use group::{EndpointGroup, GroupOptions};
pub use pick::Picker;
pub use service::{Balance, MakeEndpoint, NoEndpoints, ResponseFuture};
