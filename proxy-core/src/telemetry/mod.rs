//! OpenTelemetry tracing, propagation and logging for the gateway, the
//! sidecar and the example services: one setup, passed around as a
//! [`Telemetry`] handle rather than installed globally, so several services in
//! one process (tests, the demo) each keep their own `service.name`.
//!
//! # Layout
//!
//! - [`config`]: the `telemetry:` section and its environment overrides.
//! - [`init`]: [`Telemetry`], the handle: tracer provider, OTLP exporter,
//!   sampler, resource, counters, flush and shutdown.
//! - `processor`: the bounded, never-blocking export queue behind it.
//! - [`propagation`]: W3C / B3 / baggage headers in and out.
//! - [`spans`]: the SERVER and CLIENT spans the proxies open per request.
//! - `rpc`: the OpenTelemetry RPC attributes of a gRPC call's spans.
//! - [`service`]: the tower layer and helpers the example services use.
//! - [`logging`]: the process-wide log subscriber.
//! - [`access_log`]: one line per request with request id and trace id.
//!
//! # Use in a proxy
//!
//! ```ignore
//! let telemetry = Telemetry::init(&cfg.telemetry.resolve("telemetry", "gateway", VERSION, env)?)?;
//! let mut server = telemetry.server_span(&req, ServerSpanInfo::default());
//! server.set_route("/v1/orders", "orders-v1");
//! let mut client = telemetry.client_span(server.context(), &mut upstream_req,
//!     ClientSpanInfo { attempt: 1, upstream: Some("order"), endpoint: Some("127.0.0.1:4143"), ..Default::default() });
//! match send(upstream_req).await {
//!     Ok(resp) => { client.record_response(resp.status()); server.record_response(resp.status()) }
//!     Err(e) => { client.record_error("connect_error"); server.record_error("connect_error") }
//! }
//! ```

pub mod access_log;
pub mod config;
pub mod init;
pub mod logging;
mod processor;
pub mod propagation;
mod rpc;
pub mod service;
pub mod spans;

pub use access_log::AccessRecord;
pub use config::{
    AccessLogFormat, B3Output, ExporterSettings, OtlpProtocol, QueueSettings, TelemetryConfig,
    TelemetrySettings,
};
pub use init::{Telemetry, TelemetryError};
pub use logging::{LogFormat, init_logging};
pub use processor::SpanStats;
pub use propagation::{HeaderExtractor, HeaderInjector, Propagation};
pub use service::{ServiceTelemetry, ServiceTelemetryError, TraceLayer, inject_current_context};
pub use spans::{ActiveSpan, ClientSpanInfo, RequestHead, ServerSpanInfo};

/// Re-exported so callers name span contexts without depending on opentelemetry.
pub use opentelemetry::Context as TraceContext;
pub use opentelemetry::trace::TraceId;
