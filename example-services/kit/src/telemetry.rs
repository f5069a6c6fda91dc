//! Logs and trace-context propagation.
//!
//! Full OpenTelemetry (spans exported over OTLP) arrives later in this module;
//! until then the services log through `tracing` and pass the W3C trace
//! context on unchanged, so a trace started at the gateway still spans every
//! hop. [`propagation_headers`] is the one place that decides what travels.

use axum::http::{HeaderMap, HeaderName};

/// Headers copied from an incoming request onto every outbound call it causes.
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
}
