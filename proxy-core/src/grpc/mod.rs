//! gRPC as the proxies see it: which requests are gRPC, what their status
//! codes mean, their deadlines, and how a proxy refuses one.
//!
//! Weir proxies gRPC as HTTP/2 with trailers; this module holds what makes
//! the proxies read it as gRPC rather than as plain HTTP, where a failed call
//! is still `200 OK`: retries, the breaker, metrics, spans and access logs
//! read the `grpc-status`, and refusals answer in gRPC terms.
//!
//! # Layout
//!
//! - `code.rs`: [`Code`], the status codes, their names, and the code of a
//!   refusal from its HTTP status;
//! - `detect.rs`: [`Protocol`] (gRPC, gRPC-Web, gRPC-Web-text) from the
//!   `content-type`, and the service and method of a path;
//! - `status.rs`: reading `grpc-status`/`grpc-message` from headers or trailers;
//! - `timeout.rs`: the `grpc-timeout` header;
//! - `refusal.rs`: trailers-only refusals, and the conversion of a problem
//!   response for a gRPC client;
//! - `observe.rs`: the outcome of a call, from its headers or its trailers.

mod code;
mod detect;
mod observe;
mod refusal;
mod status;
pub mod timeout;

pub use code::Code;
pub use detect::{Protocol, is_any_grpc, is_grpc, service_method};
pub use observe::{Observed, Outcome, observe};
pub use refusal::{GrpcRefusal, answer_as_grpc, content_type, refuse, set_trailers_only};
pub use status::{
    GRPC_MESSAGE, GRPC_STATUS, encode_message, message, percent_decode, status, status_number,
};
