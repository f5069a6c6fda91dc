//! The OpenTelemetry RPC conventions on the proxies' spans, for gRPC calls:
//! `rpc.system = grpc`, `rpc.service`, `rpc.method`, and the call's outcome
//! as `rpc.grpc.status_code` (a gRPC call is HTTP 200 even when it failed,
//! so the HTTP status alone would show every failed call as a success).

use opentelemetry::KeyValue;
use opentelemetry::trace::{Status, TraceContextExt};

use super::ActiveSpan;
use crate::grpc::Code;

impl ActiveSpan {
    /// Marks the span as a gRPC call of `service`/`method` and names it
    /// `{service}/{method}`, as the RPC conventions name call spans.
    pub fn set_rpc(&mut self, service: &str, method: &str) {
        if !self.is_recording() {
            return;
        }
        let span = self.context().span();
        span.update_name(format!("{service}/{method}"));
        span.set_attribute(KeyValue::new("rpc.system", "grpc"));
        span.set_attribute(KeyValue::new("rpc.service", service.to_owned()));
        span.set_attribute(KeyValue::new("rpc.method", method.to_owned()));
    }

    /// `rpc.grpc.status_code`. A server span is an error for the codes that
    /// say the server failed (`UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`,
    /// `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`); a client span for any code
    /// but `OK`, as the conventions ask.
    pub fn record_grpc_status(&mut self, code: Code, server: bool) {
        if !self.is_recording() {
            return;
        }
        let span = self.context().span();
        span.set_attribute(KeyValue::new(
            "rpc.grpc.status_code",
            i64::from(code.as_u32()),
        ));
        let error = if server {
            code.is_server_error()
        } else {
            code != Code::Ok
        };
        if error {
            span.set_attribute(KeyValue::new("error.type", code.name()));
            span.set_status(Status::error(code.name()));
        }
    }
}
