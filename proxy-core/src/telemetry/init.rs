//! Building the per-process [`Telemetry`] handle: tracer provider, OTLP
//! exporter, sampler, resource, propagation policy and span counters.
//!
//! The handle is passed around (state, not global): several services started
//! in one test process each get their own `service.name`, which a global
//! tracer provider could not give them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{
    Protocol, RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanExporter};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};

use super::config::{AccessLogFormat, ExporterSettings, OtlpProtocol, TelemetrySettings};
use super::processor::{Control, QueueingProcessor, SpanStats};
use super::propagation::Propagation;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The export task and the gRPC channel need a tokio runtime.
    #[error("telemetry must be initialised inside a tokio runtime")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    /// `endpoint` is shown without credentials (see `SecretUrl`).
    #[error("cannot build the OTLP exporter for {endpoint}")]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("invalid OTLP header {name:?}")]
    Header {
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Tracing state of one process (or one service inside a test process).
///
/// Cheap to clone. When tracing is off, [`Telemetry::tracer`] is `None` and
/// the span helpers do nothing beyond reading an incoming trace id for logs.
#[derive(Clone, Debug)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tracer: Option<SdkTracer>,
    provider: Option<SdkTracerProvider>,
    control: Option<mpsc::Sender<Control>>,
    propagation: Propagation,
    stats: SpanStats,
    service_name: String,
    access_log: AccessLogFormat,
}

impl Telemetry {
    /// Starts tracing as `settings` say; tracing off when it names no exporter.
    ///
    /// Must run inside a tokio runtime (the export task lives there).
    pub fn init(settings: &TelemetrySettings) -> Result<Self, TelemetryError> {
        let Some(exp) = &settings.exporter else {
            return Ok(Self::disabled_with(settings));
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(TelemetryError::NoRuntime)?;
        let _entered = runtime.enter();
        let exporter = build_otlp_exporter(exp)?;
        Self::init_with_exporter(settings, exporter, exp.timeout)
    }

    /// Like [`Telemetry::init`] with any exporter (tests use the SDK's
    /// in-memory exporter). `settings.exporter` is ignored.
    pub fn init_with_exporter<E: SpanExporter + 'static>(
        settings: &TelemetrySettings,
        mut exporter: E,
        export_timeout: Duration,
    ) -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(TelemetryError::NoRuntime)?;
        let resource = resource(settings);
        exporter.set_resource(&resource);
        let stats = SpanStats::default();
        let (processor, control) = QueueingProcessor::spawn(
            exporter,
            settings.queue,
            export_timeout,
            stats.clone(),
            &runtime,
        );
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sampling_ratio,
            ))))
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("weir");
        Ok(Self {
            inner: Arc::new(Inner {
                tracer: Some(tracer),
                provider: Some(provider),
                control: Some(control),
                propagation: Propagation::new(settings.b3_output),
                stats,
                service_name: settings.service_name.clone(),
                access_log: settings.access_log,
            }),
        })
    }

    /// Tracing off: no spans, W3C headers passed through untouched.
    pub fn disabled(service_name: &str) -> Self {
        Self::disabled_with(&TelemetrySettings::disabled(service_name, ""))
    }

    fn disabled_with(settings: &TelemetrySettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                tracer: None,
                provider: None,
                control: None,
                propagation: Propagation::new(settings.b3_output),
                stats: SpanStats::default(),
                service_name: settings.service_name.clone(),
                access_log: settings.access_log,
            }),
        }
    }

    /// The tracer, when tracing is on.
    pub fn tracer(&self) -> Option<&SdkTracer> {
        self.inner.tracer.as_ref()
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.tracer.is_some()
    }

    pub fn propagation(&self) -> &Propagation {
        &self.inner.propagation
    }

    pub fn service_name(&self) -> &str {
        &self.inner.service_name
    }

    pub fn access_log(&self) -> AccessLogFormat {
        self.inner.access_log
    }

    /// Exported / dropped span counters.
    pub fn stats(&self) -> &SpanStats {
        &self.inner.stats
    }

    /// Registers `weir_telemetry_spans_dropped_total{reason}` and
    /// `weir_telemetry_spans_exported_total` in `registry` (full names: pass
    /// the root registry, not one made `with_prefix("weir")`).
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.inner.stats.clone()));
    }

    /// Exports everything finished so far; `false` if `deadline` passed first.
    pub async fn flush(&self, deadline: Duration) -> bool {
        self.request(Control::Flush, deadline).await
    }

    /// Flushes, then stops exporting. Spans ending later are dropped and counted.
    /// Returns `false` if `deadline` passed first (the rest is abandoned).
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        let done = self.request(Control::Shutdown, deadline).await;
        if let Some(provider) = &self.inner.provider {
            // Non-blocking with our processor: it only marks the provider shut down.
            let _ = provider.shutdown();
        }
        done
    }

    async fn request(&self, make: fn(oneshot::Sender<()>) -> Control, deadline: Duration) -> bool {
        let Some(control) = &self.inner.control else {
            return true;
        };
        let (ack, done) = oneshot::channel();
        let work = async {
            if control.send(make(ack)).await.is_err() {
                return true; // the export task is already gone
            }
            done.await.is_ok()
        };
        tokio::time::timeout(deadline, work).await.unwrap_or(false)
    }
}

/// `service.name`, `service.version`, `service.instance.id` and the extras.
fn resource(settings: &TelemetrySettings) -> Resource {
    let mut attrs: Vec<KeyValue> = settings
        .resource_attributes
        .iter()
        .filter(|(k, _)| k != "service.name")
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    if !settings.service_version.is_empty() {
        attrs.push(KeyValue::new(
            "service.version",
            settings.service_version.clone(),
        ));
    }
    if !settings
        .resource_attributes
        .iter()
        .any(|(k, _)| k == "service.instance.id")
    {
        attrs.push(KeyValue::new("service.instance.id", instance_id()));
    }
    attrs.push(KeyValue::new("telemetry.sdk.language", "rust"));
    attrs.push(KeyValue::new("telemetry.sdk.name", "opentelemetry"));
    Resource::builder_empty()
        .with_service_name(settings.service_name.clone())
        .with_attributes(attrs)
        .build()
}

/// A random 128-bit id, formatted like a UUID v4, new for each handle.
fn instance_id() -> String {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn build_otlp_exporter(
    exp: &ExporterSettings,
) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let built = match exp.protocol {
        OtlpProtocol::Grpc => {
            let mut headers = http::HeaderMap::new();
            for (name, value) in &exp.headers {
                let n = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
                    TelemetryError::Header {
                        name: name.clone(),
                        source: e.into(),
                    }
                })?;
                let v = http::HeaderValue::from_str(value.expose()).map_err(|e| {
                    TelemetryError::Header {
                        name: name.clone(),
                        source: e.into(),
                    }
                })?;
                headers.insert(n, v);
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(exp.endpoint.expose())
                .with_timeout(exp.timeout)
                .with_metadata(
                    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers),
                )
                // Dropping beats retrying: a retry holds the export task while the queue fills.
                .with_retry_policy(RetryPolicy::disabled())
                .build()
        }
        OtlpProtocol::Http => {
            let base = exp.endpoint.expose();
            let endpoint = if base.ends_with("/v1/traces") {
                base.to_owned()
            } else {
                format!("{base}/v1/traces")
            };
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(endpoint)
                .with_timeout(exp.timeout)
                .with_headers(
                    exp.headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.expose().clone()))
                        .collect::<HashMap<_, _>>(),
                )
                .with_retry_policy(RetryPolicy::disabled())
                .build()
        }
    };
    built.map_err(|source| TelemetryError::Exporter {
        endpoint: exp.endpoint.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_uuid_shaped_and_differ() {
        let a = instance_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, instance_id());
    }

    #[test]
    fn init_outside_a_runtime_is_an_error_not_a_panic() {
        let mut s = TelemetrySettings::disabled("x", "1");
        s.exporter = Some(ExporterSettings {
            endpoint: "http://127.0.0.1:4317".into(),
            protocol: OtlpProtocol::Grpc,
            headers: vec![],
            timeout: Duration::from_secs(1),
        });
        assert!(matches!(
            Telemetry::init(&s),
            Err(TelemetryError::NoRuntime(_))
        ));
    }

    #[test]
    fn disabled_has_no_tracer() {
        let t = Telemetry::disabled("gateway");
        assert!(!t.is_enabled());
        assert_eq!(t.service_name(), "gateway");
    }

    #[test]
    fn metrics_are_registered_under_weir_names() {
        let t = Telemetry::disabled("gateway");
        t.stats().dropped_queue_full.inc_by(3);
        let mut reg = Registry::default();
        t.register_metrics(&mut reg);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(
            out.contains("weir_telemetry_spans_dropped_total{reason=\"queue_full\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("weir_telemetry_spans_exported_total 0"),
            "{out}"
        );
    }
}
