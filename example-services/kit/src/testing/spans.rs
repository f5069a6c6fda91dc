//! Catching a service's spans in memory, for tests that check what a
//! request was traced as.
//!
//! [`recording_telemetry`] gives a [`ServiceTelemetry`] that is fully on
//! (sampler, queue and export task as in production) but exports into a
//! [`SpanRecorder`] instead of a collector. Spans are plain strings here, so
//! tests need no OpenTelemetry types.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use proxy_core::telemetry::{Telemetry, TelemetrySettings};

use crate::telemetry::ServiceTelemetry;

/// One finished span, as a test looks at it.
#[derive(Debug, Clone)]
pub struct RecordedSpan {
    /// `service.name` of the resource it was exported with.
    pub service: String,
    pub name: String,
    /// `server`, `client`, `internal`, `producer` or `consumer`.
    pub kind: &'static str,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// `None` for the root of a trace.
    pub parent_span_id: Option<String>,
    /// Every attribute, values rendered as strings.
    pub attributes: BTreeMap<String, String>,
    /// Status Error was set.
    pub error: bool,
}

impl RecordedSpan {
    /// An attribute's value.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// Where the spans of a [`recording_telemetry`] handle end up.
#[derive(Debug, Clone)]
pub struct SpanRecorder {
    telemetry: ServiceTelemetry,
    spans: Arc<Mutex<Vec<RecordedSpan>>>,
}

impl SpanRecorder {
    /// Every span that has ended so far, after exporting what is queued.
    pub async fn spans(&self) -> Vec<RecordedSpan> {
        assert!(
            self.telemetry
                .telemetry()
                .flush(Duration::from_secs(10))
                .await,
            "spans were not exported in time"
        );
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// A tracing handle for `service_name` that records instead of exporting.
/// Must be called inside a tokio runtime.
pub fn recording_telemetry(service_name: &str) -> (ServiceTelemetry, SpanRecorder) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let exporter = Exporter {
        service: String::new(),
        spans: Arc::clone(&spans),
    };
    let settings = TelemetrySettings::disabled(service_name, env!("CARGO_PKG_VERSION"));
    let telemetry = Telemetry::init_with_exporter(&settings, exporter, Duration::from_secs(5))
        .expect("telemetry in a tokio runtime");
    let telemetry = ServiceTelemetry::new(telemetry);
    (
        telemetry.clone(),
        SpanRecorder {
            telemetry,
            spans: Arc::clone(&spans),
        },
    )
}

#[derive(Debug)]
struct Exporter {
    service: String,
    spans: Arc<Mutex<Vec<RecordedSpan>>>,
}

impl SpanExporter for Exporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let recorded = batch.into_iter().map(|span| RecordedSpan {
            service: self.service.clone(),
            name: span.name.to_string(),
            kind: match span.span_kind {
                SpanKind::Server => "server",
                SpanKind::Client => "client",
                SpanKind::Producer => "producer",
                SpanKind::Consumer => "consumer",
                SpanKind::Internal => "internal",
            },
            trace_id: span.span_context.trace_id().to_string(),
            span_id: span.span_context.span_id().to_string(),
            parent_span_id: (span.parent_span_id != SpanId::INVALID)
                .then(|| span.parent_span_id.to_string()),
            attributes: span
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect(),
            error: matches!(span.status, Status::Error { .. }),
        });
        if let Ok(mut spans) = self.spans.lock() {
            spans.extend(recorded);
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service = resource
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .map(|v| v.to_string())
            .unwrap_or_default();
    }
}
