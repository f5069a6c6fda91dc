//! End-to-end tests over the whole Weir stack, and the tools they use.
//!
//! # Layout
//!
//! - [`otlp_receiver`]: an in-process OTLP collector (gRPC and HTTP/protobuf)
//!   whose store tests await instead of sleeping.
//! - [`grpc_probe`]: a real gRPC service served by tonic, and its client.
//! - [`harness`]: temp dirs, a recording upstream, a whole-response HTTP client.
//! - [`trace_tree`]: received spans as a tree per trace, with shape assertions.
//!
//! The tests themselves live in `tests/tests/`.

pub mod grpc_probe;
pub mod harness;
pub mod otlp_receiver;
pub mod trace_tree;

pub use harness::{HttpClient, Reply, TempDir, Upstream};
pub use otlp_receiver::{
    AttrValue, Kind, OtlpReceiver, ReceivedSpan, SpanStore, StatusCode, Transport,
};
pub use trace_tree::{Shape, TraceTree};
