//! The `telemetry:` section the gateway and the sidecar read alike, and the
//! environment overrides a Kubernetes deployment uses.
//!
//! The environment is read through an injected lookup function, never through
//! `std::env` directly, so tests can pass a map and nothing mutates the process
//! environment (`set_var` is banned for good reason: it races with every other
//! thread reading the environment).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigErrors, HumanDuration, Secret, SecretUrl};

/// Default OTLP/gRPC collector address (the port every collector listens on).
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://127.0.0.1:4317";
/// Default OTLP/HTTP collector address.
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://127.0.0.1:4318";

/// `telemetry:` as written in the file.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `service.name` of the spans this process exports; `OTEL_SERVICE_NAME` wins.
    pub service_name: Option<String>,
    /// Where spans go. Absent (and no `OTEL_EXPORTER_OTLP_ENDPOINT`): tracing is off.
    pub otlp: Option<OtlpConfig>,
    pub sampling: SamplingConfig,
    pub propagation: PropagationConfig,
    pub access_log: AccessLogFormat,
    pub queue: QueueConfig,
}

/// `telemetry.otlp:` the collector to export to.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// `http://host:4317` for gRPC, `http://host:4318` for HTTP (the `/v1/traces`
    /// path is appended for HTTP). Defaults to localhost on the protocol's port.
    /// Shown without user information or query, which may hold credentials.
    pub endpoint: Option<SecretUrl>,
    pub protocol: OtlpProtocol,
    /// Extra request headers (e.g. an API key of a hosted collector); their
    /// values are secrets, shown as `<redacted>`.
    pub headers: BTreeMap<String, Secret<String>>,
    /// Deadline of one export call; a slower collector loses that batch.
    pub timeout: Option<HumanDuration>,
}

/// OTLP transport.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    #[default]
    Grpc,
    /// HTTP/protobuf (`http/protobuf` in the OTel environment variables).
    Http,
}

/// `telemetry.sampling:` head sampling at the edge; parent-based everywhere.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    /// Fraction of new traces (requests arriving without a sampled parent) kept.
    pub ratio: f64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self { ratio: 1.0 }
    }
}

/// `telemetry.propagation:` which headers are written on the way out.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PropagationConfig {
    pub b3_output: B3Output,
}

/// Whether B3 headers are emitted next to W3C `traceparent` (B3 is always
/// accepted on input).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum B3Output {
    #[default]
    None,
    /// One `b3: {trace}-{span}-{sampled}` header.
    Single,
    /// `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`.
    Multi,
}

/// `telemetry.access_log:` one line per request, or none.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    #[default]
    Json,
    Off,
}

/// `telemetry.queue:` the bounded buffer between request handling and export.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Finished spans waiting for export; beyond this they are dropped and counted.
    pub max_spans: usize,
    /// Spans per export call.
    pub max_batch: usize,
    /// How long a partial batch waits before it is sent anyway.
    pub flush_interval: HumanDuration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_spans: 2048,
            max_batch: 512,
            flush_interval: HumanDuration::from_millis(1000),
        }
    }
}

/// The validated form [`crate::telemetry::Telemetry::init`] consumes.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetrySettings {
    pub service_name: String,
    pub service_version: String,
    /// `None`: tracing off (no spans are created at all).
    pub exporter: Option<ExporterSettings>,
    pub sampling_ratio: f64,
    pub b3_output: B3Output,
    pub access_log: AccessLogFormat,
    pub queue: QueueSettings,
    /// Extra resource attributes (`OTEL_RESOURCE_ATTRIBUTES`, Kubernetes pod/namespace).
    pub resource_attributes: Vec<(String, String)>,
}

/// Where and how spans are exported.
#[derive(Clone, Debug, PartialEq)]
pub struct ExporterSettings {
    /// Base endpoint (`http://host:port`), without `/v1/traces`.
    pub endpoint: SecretUrl,
    pub protocol: OtlpProtocol,
    pub headers: Vec<(String, Secret<String>)>,
    pub timeout: Duration,
}

/// Bounded queue sizes, validated (`max_batch <= max_spans`, both > 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    pub max_spans: usize,
    pub max_batch: usize,
    pub flush_interval: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        let q = QueueConfig::default();
        Self {
            max_spans: q.max_spans,
            max_batch: q.max_batch,
            flush_interval: q.flush_interval.get(),
        }
    }
}

impl TelemetrySettings {
    /// Tracing off, logs on: what a process gets without any configuration.
    pub fn disabled(service_name: &str, service_version: &str) -> Self {
        Self {
            service_name: service_name.to_owned(),
            service_version: service_version.to_owned(),
            exporter: None,
            sampling_ratio: 1.0,
            b3_output: B3Output::None,
            access_log: AccessLogFormat::Json,
            queue: QueueSettings::default(),
            resource_attributes: Vec::new(),
        }
    }
}

impl TelemetryConfig {
    /// Validates the section and applies environment overrides.
    ///
    /// `base` is the section's field path for error messages (`telemetry`),
    /// `default_name` the service name when neither file nor env gives one,
    /// `version` the binary's version (`env!("CARGO_PKG_VERSION")`), and `env`
    /// the environment lookup (`|k| std::env::var(k).ok()` in `main`).
    ///
    /// Precedence, per the OpenTelemetry spec: environment over file over defaults.
    pub fn resolve(
        &self,
        base: &str,
        default_name: &str,
        version: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<TelemetrySettings, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let field = |name: &str| {
            if base.is_empty() {
                name.to_owned()
            } else {
                format!("{base}.{name}")
            }
        };
        let env = |k: &str| {
            env(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let service_name = env("OTEL_SERVICE_NAME")
            .or_else(|| self.service_name.clone())
            .unwrap_or_else(|| default_name.to_owned());
        if service_name.trim().is_empty() {
            errors.push(field("service_name"), "must not be empty");
        }

        let ratio = self.sampling.ratio;
        if !(0.0..=1.0).contains(&ratio) || ratio.is_nan() {
            errors.push(
                field("sampling.ratio"),
                format!("{ratio} is not between 0 and 1"),
            );
        }

        let q = &self.queue;
        if q.max_spans == 0 {
            errors.push(field("queue.max_spans"), "must be at least 1");
        }
        if q.max_batch == 0 || q.max_batch > q.max_spans.max(1) {
            errors.push(
                field("queue.max_batch"),
                "must be between 1 and queue.max_spans",
            );
        }
        if q.flush_interval.get().is_zero() {
            errors.push(field("queue.flush_interval"), "must be greater than zero");
        }

        let exporter = self.resolve_exporter(&field, &env, &mut errors);
        let resource_attributes = resource_attributes(&env, &mut errors);

        let settings = TelemetrySettings {
            service_name,
            service_version: version.to_owned(),
            exporter: if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                None
            } else {
                exporter
            },
            sampling_ratio: ratio.clamp(0.0, 1.0),
            b3_output: self.propagation.b3_output,
            access_log: self.access_log,
            queue: QueueSettings {
                max_spans: q.max_spans.max(1),
                max_batch: q.max_batch.clamp(1, q.max_spans.max(1)),
                flush_interval: q.flush_interval.get(),
            },
            resource_attributes,
        };
        errors.into_result(settings)
    }

    fn resolve_exporter(
        &self,
        field: &dyn Fn(&str) -> String,
        env: &dyn Fn(&str) -> Option<String>,
        errors: &mut ConfigErrors,
    ) -> Option<ExporterSettings> {
        let env_endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT");
        if self.otlp.is_none() && env_endpoint.is_none() {
            return None;
        }
        let file = self.otlp.clone().unwrap_or_default();
        let protocol = match env("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
            None => file.protocol,
            Some("grpc") => OtlpProtocol::Grpc,
            Some("http/protobuf") => OtlpProtocol::Http,
            Some(other) => {
                errors.push(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    format!("{other:?} is not supported; use grpc or http/protobuf"),
                );
                file.protocol
            }
        };
        let endpoint = env_endpoint
            .map(SecretUrl::new)
            .or(file.endpoint)
            .unwrap_or_else(|| {
                SecretUrl::from(match protocol {
                    OtlpProtocol::Grpc => DEFAULT_GRPC_ENDPOINT,
                    OtlpProtocol::Http => DEFAULT_HTTP_ENDPOINT,
                })
            });
        match endpoint.expose().parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
            // The redacted form: user information in the URL stays private.
            _ => errors.push(
                field("otlp.endpoint"),
                format!("\"{endpoint}\" is not an http(s)://host:port URL"),
            ),
        }
        let mut headers: BTreeMap<String, Secret<String>> = file.headers;
        if let Some(raw) = env("OTEL_EXPORTER_OTLP_HEADERS") {
            match parse_key_values(&raw) {
                Ok(pairs) => headers.extend(pairs.into_iter().map(|(k, v)| (k, Secret::new(v)))),
                // The list holds credentials: say what is wrong, not what was written.
                Err(_) => errors.push(
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "is not a comma-separated name=value list with %-escapes (value not shown: it holds credentials)",
                ),
            }
        }
        for name in headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(
                    field(&format!("otlp.headers.{name}")),
                    "is not a valid header name",
                );
            }
        }
        Some(ExporterSettings {
            endpoint: SecretUrl::new(endpoint.expose().trim_end_matches('/')),
            protocol,
            headers: headers.into_iter().collect(),
            timeout: file
                .timeout
                .map_or(Duration::from_secs(5), HumanDuration::get),
        })
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES` plus the Kubernetes downward-API variables.
fn resource_attributes(
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut ConfigErrors,
) -> Vec<(String, String)> {
    let mut attrs = BTreeMap::new();
    if let Some(raw) = env("OTEL_RESOURCE_ATTRIBUTES") {
        match parse_key_values(&raw) {
            Ok(pairs) => attrs.extend(pairs),
            Err(e) => errors.push("OTEL_RESOURCE_ATTRIBUTES", e),
        }
    }
    if let Some(pod) = env("POD_NAME") {
        attrs.insert("k8s.pod.name".to_owned(), pod);
    }
    if let Some(ns) = env("POD_NAMESPACE") {
        attrs.insert("k8s.namespace.name".to_owned(), ns);
    }
    attrs.into_iter().collect()
}

/// Parses the OTel `key1=value1,key2=value2` list (values percent-decoded).
pub fn parse_key_values(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not key=value"))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("{item:?} has an empty key"));
        }
        out.push((k.to_owned(), percent_decode(v.trim())?));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("{s:?}: truncated %-escape"))?;
            let b = u8::from_str_radix(hex, 16).map_err(|_| format!("{s:?}: bad %-escape"))?;
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?}: not UTF-8 after decoding"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::parse_yaml;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn no_section_and_no_env_means_tracing_off() {
        let s = TelemetryConfig::default()
            .resolve("telemetry", "gateway", "1.0", env_of(&[]))
            .unwrap();
        assert_eq!(s.exporter, None);
        assert_eq!(s.service_name, "gateway");
    }

    #[test]
    fn file_values_are_read() {
        let c: TelemetryConfig = parse_yaml(
            "service_name: order-sidecar\notlp: { endpoint: 'http://collector:4318/', protocol: http, headers: { x-key: abc }, timeout: 2s }\nsampling: { ratio: 0.25 }\npropagation: { b3_output: multi }\naccess_log: off\nqueue: { max_spans: 100, max_batch: 10 }\n",
        )
        .unwrap();
        let s = c.resolve("telemetry", "x", "1.0", env_of(&[])).unwrap();
        let e = s.exporter.unwrap();
        assert_eq!(e.endpoint.expose(), "http://collector:4318");
        assert_eq!(e.protocol, OtlpProtocol::Http);
        assert_eq!(
            e.headers,
            vec![("x-key".to_owned(), Secret::new("abc".to_owned()))]
        );
        assert_eq!(e.timeout, Duration::from_secs(2));
        assert_eq!(s.service_name, "order-sidecar");
        assert_eq!(s.sampling_ratio, 0.25);
        assert_eq!(s.b3_output, B3Output::Multi);
        assert_eq!(s.access_log, AccessLogFormat::Off);
        assert_eq!((s.queue.max_spans, s.queue.max_batch), (100, 10));
    }

    #[test]
    fn environment_overrides_file() {
        let c: TelemetryConfig = parse_yaml(
            "service_name: a\notlp: { endpoint: 'http://file:4317', headers: { k: file } }\n",
        )
        .unwrap();
        let s = c
            .resolve(
                "telemetry",
                "x",
                "1.0",
                env_of(&[
                    ("OTEL_SERVICE_NAME", "b"),
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "k=env,api-key=a%20b"),
                    ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
                    ("POD_NAME", "order-7f9"),
                    ("POD_NAMESPACE", "shop"),
                ]),
            )
            .unwrap();
        assert_eq!(s.service_name, "b");
        let e = s.exporter.unwrap();
        assert_eq!(e.endpoint.expose(), "http://env:4318");
        assert_eq!(e.protocol, OtlpProtocol::Http);
        assert_eq!(
            e.headers,
            vec![
                ("api-key".into(), Secret::new("a b".into())),
                ("k".into(), Secret::new("env".into()))
            ]
        );
        assert_eq!(
            s.resource_attributes,
            vec![
                ("deployment.environment".into(), "prod".into()),
                ("k8s.namespace.name".into(), "shop".into()),
                ("k8s.pod.name".into(), "order-7f9".into()),
            ]
        );
    }

    #[test]
    fn env_endpoint_alone_turns_tracing_on_with_grpc() {
        let s = TelemetryConfig::default()
            .resolve(
                "telemetry",
                "x",
                "1",
                env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")]),
            )
            .unwrap();
        assert_eq!(s.exporter.unwrap().protocol, OtlpProtocol::Grpc);
    }

    #[test]
    fn sdk_disabled_turns_tracing_off() {
        let c: TelemetryConfig = parse_yaml("otlp: {}\n").unwrap();
        let s = c
            .resolve("t", "x", "1", env_of(&[("OTEL_SDK_DISABLED", "true")]))
            .unwrap();
        assert_eq!(s.exporter, None);
        let s = c.resolve("t", "x", "1", env_of(&[])).unwrap();
        assert_eq!(s.exporter.unwrap().endpoint.expose(), DEFAULT_GRPC_ENDPOINT);
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let c: TelemetryConfig = parse_yaml(
            "otlp: { endpoint: 'ftp://x' }\nsampling: { ratio: 1.5 }\nqueue: { max_spans: 4, max_batch: 8 }\n",
        )
        .unwrap();
        let err = c
            .resolve(
                "telemetry",
                "x",
                "1",
                env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]),
            )
            .unwrap_err();
        let paths: Vec<&str> = err.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "telemetry.sampling.ratio",
                "telemetry.queue.max_batch",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "telemetry.otlp.endpoint"
            ]
        );
    }

    #[test]
    fn headers_and_endpoint_credentials_never_show() {
        let c: TelemetryConfig = parse_yaml(
            "otlp: { endpoint: 'http://user:pw-in-url-1@c:4318', headers: { x-key: header-secret-2 } }\n",
        )
        .unwrap();
        let s = c
            .resolve(
                "telemetry",
                "x",
                "1",
                env_of(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=env-secret-3")]),
            )
            .unwrap();
        let e = s.exporter.clone().unwrap();
        assert_eq!(e.headers[0].1.expose(), "env-secret-3");
        let shown = format!("{c:?} {s:?} {}", serde_json::to_string(&c).unwrap());
        for secret in ["pw-in-url-1", "header-secret-2", "env-secret-3"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // Bad values are reported without echoing them.
        let bad: TelemetryConfig =
            parse_yaml("otlp: { endpoint: 'ftp://user:pw-in-url-4@c' }\n").unwrap();
        let err = bad
            .resolve(
                "telemetry",
                "x",
                "1",
                env_of(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=%zzsecret-5")]),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("telemetry.otlp.endpoint"), "{err}");
        assert!(err.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{err}");
        assert!(
            !err.contains("pw-in-url-4") && !err.contains("secret-5"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = parse_yaml::<TelemetryConfig>(
            "otlp: { endpoint: 'http://x:4317', compression: gzip }\n",
        )
        .unwrap_err();
        assert_eq!(err.0[0].path, "otlp.compression");
    }

    #[test]
    fn key_value_lists_parse_and_reject_garbage() {
        assert_eq!(
            parse_key_values(" a=1 , b=x%2Cy ").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "x,y".into())]
        );
        assert!(parse_key_values("novalue").is_err());
        assert!(parse_key_values("a=%zz").is_err());
    }
}
