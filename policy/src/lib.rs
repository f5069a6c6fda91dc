//! Request policies of the Weir gateway: authentication (JWT, API keys), rate
//! limiting (local or shared through Redis) and CORS.
//!
//! The gateway builds a [`Policies`] from the `auth:` and `rate_limits:`
//! sections, a [`RoutePolicy`] per route, and calls [`Policies::check`] for
//! every request after route matching. Long-lived state (rate-limit counters,
//! Redis connections, JWKS caches, metrics) lives in a [`PolicyState`] that is
//! passed into every build, so reloads keep it.
//!
//! Layout: `config/` (raw serde sections and validation), `auth/` (JWT, JWKS,
//! API keys, errors), `auth_failures.rs` (the failed-authentication
//! throttle), `identity.rs`, `ratelimit/` (GCRA, local and Redis backends,
//! keys, headers), `cors.rs`, `rejection.rs` (problem+json),
//! `policies.rs` (the entry points), `state.rs`, `metrics.rs`.

mod auth;
mod auth_failures;
pub mod config;
mod cors;
mod identity;
mod ip_text;
mod metrics;
mod policies;
pub mod ratelimit;
mod rejection;
mod route;
mod state;

pub use auth::error::{AuthError, AuthErrorKind};
pub use identity::Identity;
pub use policies::{Admitted, Policies};
pub use rejection::{Rejection, RejectionKind};
pub use route::{RoutePolicy, RouteRef};
pub use state::PolicyState;
