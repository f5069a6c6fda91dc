//! One access-log line per request, with the request id and the trace id
//! side by side so a log line leads to its trace and back.
//!
//! Lines are `tracing` events with target `weir::access` at INFO; with
//! [`crate::telemetry::LogFormat::Json`] each is one JSON object whose fields
//! are flat (`request_id`, `trace_id`, `status`…).

use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry::trace::TraceId;

use super::config::AccessLogFormat;

/// What one access-log line says.
#[derive(Clone, Debug)]
pub struct AccessRecord<'a> {
    /// `x-request-id` of the request (generated when absent).
    pub request_id: &'a str,
    /// From [`crate::telemetry::ActiveSpan::trace_id`].
    pub trace_id: Option<TraceId>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration: Duration,
    pub client: Option<SocketAddr>,
    /// Route name from the config.
    pub route: Option<&'a str>,
    pub upstream: Option<&'a str>,
    /// The endpoint (`ip:port`) the balancer picked.
    pub endpoint: Option<&'a str>,
    /// API key consumer or JWT subject, when authenticated.
    pub consumer: Option<&'a str>,
    /// Request body bytes received from the client, when counted.
    pub bytes_in: Option<u64>,
    /// Response body bytes sent to the client, when counted.
    pub bytes_out: Option<u64>,
}

impl AccessRecord<'_> {
    /// Writes the line unless `format` is `off`.
    pub fn emit(&self, format: AccessLogFormat) {
        if format == AccessLogFormat::Off {
            return;
        }
        let trace_id = self.trace_id.map(|t| t.to_string());
        tracing::info!(
            target: "weir::access",
            request_id = self.request_id,
            trace_id = trace_id.as_deref().unwrap_or(""),
            method = self.method,
            path = self.path,
            status = self.status,
            duration_ms = self.duration.as_secs_f64() * 1000.0,
            client = self.client.map(|c| c.to_string()).as_deref().unwrap_or(""),
            route = self.route.unwrap_or(""),
            upstream = self.upstream.unwrap_or(""),
            endpoint = self.endpoint.unwrap_or(""),
            consumer = self.consumer.unwrap_or(""),
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            "access"
        );
    }
}
