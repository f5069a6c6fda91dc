//! What the Weir example services share: server start-up, problem responses,
//! database pools, calls through the sidecar, telemetry.
//!
//! The three example services (catalog, order, payment) are small on purpose;
//! everything they would otherwise copy lives here once, so each service crate
//! reads as its domain and nothing else.
//!
//! # Layout
//!
//! - [`problem`]: RFC 9457 `application/problem+json` errors with stable type URIs.
//! - [`extract`]: request extractors that turn bad input into `400`/`413`/`422`
//!   problems naming the field, never a `500`.
//! - [`server`]: the middleware stack (request id, log span, body limit, problem
//!   rendering), the per-request SERVER span, and serving with graceful shutdown.
//! - [`service`]: a service's `run` set-up and shut-down, its `Error`
//!   ([`ServiceError`]) and the [`migrations!`] macro.
//! - [`grpc`]: gRPC beside REST on the same port: dispatch by content type,
//!   `grpc-timeout`, `rpc.*` spans, problems as statuses.
//! - [`health`]: `/healthz` and `/readyz` (database reachable).
//! - [`db`]: SQLite-or-PostgreSQL pools with embedded migrations.
//! - [`outbound`]: the HTTP client for calls to other services, direct or through
//!   the sidecar's outbound proxy.
//! - [`telemetry`]: log set-up, a service's OpenTelemetry handle from its
//!   environment, trace-context propagation; `Db::traced` (in `db_span`)
//!   makes spans of queries.
//! - [`messaging`]: trace context in message headers, and the producer and
//!   consumer spans of the event buses.
//! - [`openapi`]: serving the generated OpenAPI document.
//! - [`env`]: typed reading of environment variables for `Config::from_env`.
//! - [`testing`]: the in-process test harness (temp dir, server handle, client).

pub mod db;
mod db_span;
pub mod env;
pub mod extract;
pub mod grpc;
pub mod health;
pub mod messaging;
pub mod openapi;
pub mod outbound;
pub mod problem;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod testing;

pub use db::{Backend, Db, DbError, Migrations};
pub use db_span::SpanError;
pub use outbound::{Outbound, OutboundError, OutboundResponse};
pub use problem::{Problem, ProblemDetails};
pub use service::ServiceError;

/// Milliseconds since the Unix epoch: the one clock the services store.
///
/// Stored as an integer so SQLite and PostgreSQL see the same type.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
