//! Logs, OpenTelemetry spans and trace-context propagation for the services.
//!
//! The tracing itself is the one shared helper in `proxy-core`
//! ([`ServiceTelemetry`]); this module only starts it the way a service
//! wants: from an environment lookup (the standard `OTEL_*` variables), under
//! the service's own `service.name`, and as a handle passed in the service's
//! `Config` rather than a global, so the demo can run catalog, order and
//! payment in one process, each exporting under its own name.
//!
//! With no `OTEL_EXPORTER_OTLP_ENDPOINT` tracing is off: no spans are made,
//! no export task runs, and the trace headers of a request travel on to the
//! calls it causes unchanged ([`propagation_headers`]), so a trace started
//! at the gateway still spans every hop.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName};
use proxy_core::telemetry::{ServiceTelemetryError, Telemetry, TelemetryConfig};

use crate::env::EnvError;

pub use proxy_core::telemetry::{ActiveSpan, ServiceTelemetry, TraceContext};

/// Headers copied from an incoming request onto every outbound call it
/// causes. With tracing on, the outbound client then replaces the trace
/// headers with its own CLIENT span's context.
pub const PROPAGATED: [&str; 4] = ["traceparent", "tracestate", "baggage", "x-request-id"];

/// The headers of `incoming` that must travel with the calls it causes.
pub fn propagation_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in PROPAGATED {
        let name = HeaderName::from_static(name);
        for value in incoming.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Starts tracing for `service_name` from the variables `env` gives:
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (unset: tracing off),
/// `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`, default, or `http/protobuf`),
/// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_RESOURCE_ATTRIBUTES`,
/// `OTEL_SERVICE_NAME` (overrides `service_name`), `OTEL_SDK_DISABLED`,
/// and `POD_NAME`/`POD_NAMESPACE` from the Kubernetes downward API.
///
/// With an endpoint it must run inside a tokio runtime (the export task
/// lives there). A bad value is reported as the variable that holds it.
pub fn init(
    service_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ServiceTelemetry, EnvError> {
    ServiceTelemetry::init(
        &TelemetryConfig::default(),
        service_name,
        env!("CARGO_PKG_VERSION"),
        env,
    )
    .map_err(|error| env_error(error, env))
}

/// Tracing off: what `Config::new` of every service starts with.
pub fn disabled(service_name: &str) -> ServiceTelemetry {
    ServiceTelemetry::new(Telemetry::disabled(service_name))
}

/// How long a stopping service waits for its last spans to reach the
/// collector; a collector that is down costs at most this much at exit.
pub const EXPORT_DEADLINE: Duration = Duration::from_secs(5);

/// Exports the spans finished so far: the end of a service's `run`, so a
/// stopped service (the demo's Ctrl-C, a test) loses none of its last spans.
pub async fn flush(telemetry: &ServiceTelemetry) {
    let t = telemetry.telemetry();
    if t.is_enabled() && !t.flush(EXPORT_DEADLINE).await {
        tracing::warn!(
            service = t.service_name(),
            "spans not exported before the deadline"
        );
    }
}

/// Exports what is left and stops exporting: the last thing a binary does.
pub async fn shutdown(telemetry: &ServiceTelemetry) {
    let t = telemetry.telemetry();
    if t.is_enabled() && !t.shutdown(EXPORT_DEADLINE).await {
        tracing::warn!(
            service = t.service_name(),
            "spans not exported before the deadline"
        );
    }
}

/// Names the variable behind a failed start, so `from_env` reports it like
/// any other bad setting.
fn env_error(error: ServiceTelemetryError, env: &dyn Fn(&str) -> Option<String>) -> EnvError {
    match error {
        ServiceTelemetryError::Config(errors) => {
            let first = errors.iter().next();
            let full = first.map(|e| e.path.as_str()).unwrap_or_default();
            let path = full.strip_prefix("telemetry.").unwrap_or(full);
            let name = if path.starts_with("otlp.headers") {
                "OTEL_EXPORTER_OTLP_HEADERS"
            } else if path.starts_with("otlp.endpoint") {
                "OTEL_EXPORTER_OTLP_ENDPOINT"
            } else if path.starts_with("service_name") {
                "OTEL_SERVICE_NAME"
            } else {
                full
            };
            EnvError {
                name: name.to_owned(),
                value: env(name).unwrap_or_default(),
                reason: first.map_or_else(|| errors.to_string(), |e| e.message.clone()),
            }
        }
        ServiceTelemetryError::Init(error) => EnvError {
            name: "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            value: env("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default(),
            reason: crate::server::error_chain(&error),
        },
    }
}

/// Installs the log subscriber for a service binary: `RUST_LOG` filter (default
/// `info`), JSON lines when `LOG_FORMAT=json`.
pub fn init_logs() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if result.is_err() {
        tracing::debug!("a log subscriber was already installed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn copies_only_trace_context_and_request_id() {
        let mut incoming = HeaderMap::new();
        incoming.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        incoming.insert("x-request-id", "abc".parse().unwrap());
        incoming.insert("authorization", "Bearer secret".parse().unwrap());
        let out = propagation_headers(&incoming);
        assert_eq!(out.len(), 2);
        assert!(out.get("authorization").is_none());
        assert_eq!(out.get("x-request-id").unwrap(), "abc");
    }

    #[test]
    fn no_endpoint_means_tracing_off_even_outside_a_runtime() {
        let t = init("catalog", &lookup(&[])).unwrap();
        assert!(!t.telemetry().is_enabled());
        assert_eq!(t.telemetry().service_name(), "catalog");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = init(
            "catalog",
            &lookup(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ]),
        )
        .unwrap_err();
        assert_eq!(err.name, "OTEL_EXPORTER_OTLP_PROTOCOL");
        assert_eq!(err.value, "http/json");

        let err = init(
            "catalog",
            &lookup(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector")]),
        )
        .unwrap_err();
        assert_eq!(err.name, "OTEL_EXPORTER_OTLP_ENDPOINT");
        assert_eq!(err.value, "ftp://collector");
    }

    #[tokio::test]
    async fn an_endpoint_turns_tracing_on_under_the_service_name() {
        let t = init(
            "order",
            &lookup(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")]),
        )
        .unwrap();
        assert!(t.telemetry().is_enabled());
        assert_eq!(t.telemetry().service_name(), "order");
        let renamed = init(
            "order",
            &lookup(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_SERVICE_NAME", "order-eu"),
            ]),
        )
        .unwrap();
        assert_eq!(renamed.telemetry().service_name(), "order-eu");
    }
}
