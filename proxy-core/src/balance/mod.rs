//! Endpoint sets and load balancing.
//!
//! An [`EndpointGroup`] is everything a proxy knows about one upstream's
//! endpoints: the current set (static, or re-resolved from DNS), each
//! endpoint's load, latency and health, and the policy that picks one per
//! request. Picking takes no lock: the set is an `ArcSwap`, the counters atomics.

mod discovery;
mod endpoint;
mod group;
mod health;
mod pick;

pub use endpoint::{Endpoint, InFlight};
pub use group::{EndpointGroup, GroupOptions};
pub use pick::Picker;
