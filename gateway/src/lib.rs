//! Weir edge gateway.
//!
//! # Layout
//!
//! - [`config`]: `gateway.yaml` as serde structs and its validation.
//! - [`routing`]: the compiled route table (matching, versioning, rewrites).
//! - [`snapshot`]: the runtime state built from one config, swapped on reload.
//! - [`upstream`]: endpoints, balancer and connection pool of an upstream.
//! - [`proxy`]: the request path as phases (admit, policy, upstream, send,
//!   respond), one file each, called in request order.
//! - [`metrics`]: Prometheus families.
//! - `grpc_web`: gRPC-Web clients translated to gRPC and back.
//! - [`dashboard`]: what the admin listener's `/dashboard` shows.
//! - [`run`](mod@run): starts the workload identity (`identity:`), binds
//!   listeners and the admin port and serves until shutdown.

pub mod config;
pub mod dashboard;
mod grpc_web;
pub mod metrics;
pub mod proxy;
pub mod routing;
pub mod run;
pub mod snapshot;
pub mod upstream;

pub use run::{Gateway, GatewayError, run};
pub use snapshot::load_config;
