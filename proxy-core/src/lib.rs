//! What the Weir gateway and sidecar share.
//!
//! # Layout
//!
//! - [`config`]: typed configuration building blocks (durations, sizes, field-path
//!   errors, YAML loading) and the sections both proxies read alike.
//! - [`reload`]: hot reload of a whole runtime snapshot through `arc-swap`.
//! - [`server`]: listeners, TLS termination, connection limits, graceful drain.
//! - [`forward`]: the pooled upstream client and header hygiene of a proxy hop.
//! - [`identity`]: workload identity (SPIFFE IDs) and the credentials that prove it.
//! - [`grpc`]: gRPC detection, status codes, deadlines, trailers-only refusals.
//! - [`mtls`]: mutual TLS between sidecars on those credentials, peer identities.
//! - [`balance`]: endpoint sets, load balancers, active health checks.
//! - [`resilience`]: timeouts, retries with budgets, circuit breaking.
//! - [`telemetry`]: OpenTelemetry tracing, propagation, logging.
//! - [`admin`]: the admin listener (`/healthz`, `/readyz`, `/metrics`, `/config`).
//! - [`problem`]: RFC 9457 problem responses for errors the proxies generate.
//! - [`body`]: the body type that flows through both proxies.
//! - [`hash`]: the hashers of request-path maps (foldhash; keyed where clients pick keys).

pub mod admin;
pub mod balance;
pub mod body;
pub mod config;
pub mod forward;
pub mod grpc;
pub mod hash;
pub mod identity;
pub mod metrics;
pub mod mtls;
pub mod problem;
pub mod process;
pub mod reload;
pub mod resilience;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
