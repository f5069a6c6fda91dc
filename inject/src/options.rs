//! What injection adds, and how a pod's `weir.dev/*` annotations change it.
//!
//! [`InjectOptions`] holds the defaults an operator picks on the command line
//! (`sidecar inject`, `sidecar webhook`); [`PodSettings`] is those defaults
//! overridden by one pod's annotations, validated as a whole so that every bad
//! annotation is reported at once.

use serde_json::{Map, Value};

use crate::error::InjectError;

/// Annotation prefix shared by every knob.
pub const ANNOTATION_PREFIX: &str = "weir.dev/";
/// `enabled` opts a pod template in, `disabled` opts it out (even with `--all`).
pub const INJECT_ANNOTATION: &str = "weir.dev/inject";
/// Set to `"true"` on every pod the injector changed; its presence means "leave alone".
pub const INJECTED_ANNOTATION: &str = "weir.dev/injected";
/// Name of the injected proxy container (a native sidecar in `initContainers`).
pub const SIDECAR_CONTAINER: &str = "weir-sidecar";
/// Name of the init container that installs the iptables redirect.
pub const INIT_CONTAINER: &str = "weir-init";
/// The uid the proxy runs as; `init-iptables` exempts its traffic from redirection.
pub const PROXY_UID: i64 = 2102;

/// The default sidecar image: the image built from `deploy/sidecar.Dockerfile`
/// at this crate's version, so an injector never mixes versions by accident.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/weir-dev/sidecar:", env!("CARGO_PKG_VERSION"));

/// How application traffic reaches the outbound proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `weir-init` redirects the pod's TCP traffic through the proxy with iptables.
    Transparent,
    /// No init container and no NET_ADMIN: apps reach the proxy through `HTTP_PROXY`.
    Explicit,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Transparent => "transparent",
            Mode::Explicit => "explicit",
        }
    }
}

/// Injection defaults chosen by whoever runs the injector; pods override them
/// with annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectOptions {
    /// Inject pod templates that carry no `weir.dev/inject` annotation too.
    pub all: bool,
    pub image: String,
    pub mode: Mode,
    pub inbound_port: u16,
    pub outbound_port: u16,
    pub admin_port: u16,
    /// OTLP endpoint for the sidecar's spans (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub otlp_endpoint: Option<String>,
    /// ConfigMap holding `sidecar.yaml`, mounted at `/etc/weir`.
    pub config_map: Option<String>,
    /// Seconds the sidecar keeps serving after termination starts, so that
    /// endpoints controllers and load balancers stop sending first.
    pub drain_seconds: u32,
    pub cpu_request: String,
    pub cpu_limit: Option<String>,
    pub memory_request: String,
    pub memory_limit: Option<String>,
    /// URL of the identity issuer; when set, the sidecar gets its workload
    /// identity from it with a projected ServiceAccount token.
    pub identity_issuer: Option<String>,
}

impl Default for InjectOptions {
    fn default() -> Self {
        Self {
            all: false,
            image: DEFAULT_IMAGE.to_owned(),
            mode: Mode::Transparent,
            inbound_port: 4143,
            outbound_port: 4140,
            admin_port: 4191,
            otlp_endpoint: None,
            config_map: None,
            drain_seconds: 5,
            cpu_request: "50m".to_owned(),
            cpu_limit: None,
            memory_request: "32Mi".to_owned(),
            memory_limit: Some("128Mi".to_owned()),
            identity_issuer: None,
        }
    }
}

/// The options for one pod: [`InjectOptions`] with its annotations applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodSettings {
    pub(crate) image: String,
    pub(crate) mode: Mode,
    pub(crate) inbound_port: u16,
    pub(crate) outbound_port: u16,
    pub(crate) admin_port: u16,
    pub(crate) app_port: Option<u16>,
    pub(crate) service: Option<String>,
    pub(crate) otlp_endpoint: Option<String>,
    pub(crate) config_map: Option<String>,
    pub(crate) drain_seconds: u32,
    pub(crate) cpu_request: String,
    pub(crate) cpu_limit: Option<String>,
    pub(crate) memory_request: String,
    pub(crate) memory_limit: Option<String>,
    /// Ports `weir-init` leaves alone (transparent mode).
    pub(crate) skip_inbound_ports: Vec<u16>,
    pub(crate) skip_outbound_ports: Vec<u16>,
    /// A Secret whose `token` key is the admin listener's bearer token
    /// (`weir.dev/admin-token-secret`), mounted for the sidecar.
    pub(crate) admin_token_secret: Option<String>,
    /// [`InjectOptions::identity_issuer`].
    pub(crate) identity_issuer: Option<String>,
}

/// Every annotation the injector reads (besides `inject`/`injected`); anything
/// else under `weir.dev/` is an error, so a typo does not silently do nothing.
const KNOWN: &[&str] = &[
    "inject",
    "injected",
    "image",
    "mode",
    "service",
    "app-port",
    "inbound-port",
    "outbound-port",
    "admin-port",
    "otlp-endpoint",
    "config-map",
    "drain-seconds",
    "proxy-cpu-request",
    "proxy-cpu-limit",
    "proxy-memory-request",
    "proxy-memory-limit",
    "skip-inbound-ports",
    "skip-outbound-ports",
    "admin-token-secret",
];

impl PodSettings {
    /// Applies `annotations` over `opts`. `labels` supply the service name when
    /// `weir.dev/service` is absent (`app.kubernetes.io/name`, then `app`).
    pub(crate) fn resolve(
        opts: &InjectOptions,
        annotations: &Map<String, Value>,
        labels: &Map<String, Value>,
    ) -> Result<Self, InjectError> {
        let mut problems = Vec::new();
        let mut get = |key: &str| -> Option<String> {
            match annotations.get(&format!("{ANNOTATION_PREFIX}{key}"))? {
                Value::String(s) => Some(s.clone()),
                other => {
                    problems.push(format!(
                        "{ANNOTATION_PREFIX}{key}: must be a string, got {other}"
                    ));
                    None
                }
            }
        };
        let image = get("image");
        let mode = get("mode");
        let service = get("service");
        let app_port = get("app-port");
        let ports = [get("inbound-port"), get("outbound-port"), get("admin-port")];
        let otlp = get("otlp-endpoint");
        let config_map = get("config-map");
        let admin_token_secret = get("admin-token-secret");
        let drain = get("drain-seconds");
        let skips = [get("skip-inbound-ports"), get("skip-outbound-ports")];
        let quantities = [
            get("proxy-cpu-request"),
            get("proxy-cpu-limit"),
            get("proxy-memory-request"),
            get("proxy-memory-limit"),
        ];

        for key in annotations.keys() {
            if let Some(name) = key.strip_prefix(ANNOTATION_PREFIX)
                && !KNOWN.contains(&name)
            {
                problems.push(format!("{key}: unknown annotation"));
            }
        }

        let mode = match mode.as_deref() {
            None => opts.mode,
            Some("transparent") => Mode::Transparent,
            Some("explicit") => Mode::Explicit,
            Some(other) => {
                problems.push(format!(
                    "{ANNOTATION_PREFIX}mode: expected `transparent` or `explicit`, got `{other}`"
                ));
                opts.mode
            }
        };
        let mut port = |key: &str, raw: Option<String>| -> Option<u16> {
            let raw = raw?;
            match raw.parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    problems.push(format!(
                        "{ANNOTATION_PREFIX}{key}: expected a port 1-65535, got `{raw}`"
                    ));
                    None
                }
            }
        };
        let [inbound, outbound, admin] = ports;
        let inbound_port = port("inbound-port", inbound).unwrap_or(opts.inbound_port);
        let outbound_port = port("outbound-port", outbound).unwrap_or(opts.outbound_port);
        let admin_port = port("admin-port", admin).unwrap_or(opts.admin_port);
        let app_port = port("app-port", app_port);

        let [skip_in, skip_out] = skips;
        let mut port_list = |key: &str, raw: Option<String>| -> Vec<u16> {
            let Some(raw) = raw else { return Vec::new() };
            let mut ports = Vec::new();
            for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.parse::<u16>() {
                    Ok(p) if p > 0 => ports.push(p),
                    _ => problems.push(format!(
                        "{ANNOTATION_PREFIX}{key}: `{part}` is not a port 1-65535 (expected a comma-separated list)"
                    )),
                }
            }
            ports
        };
        let skip_inbound_ports = port_list("skip-inbound-ports", skip_in);
        let skip_outbound_ports = port_list("skip-outbound-ports", skip_out);

        let drain_seconds = match drain {
            None => opts.drain_seconds,
            Some(raw) => match raw.parse::<u32>() {
                Ok(s) if s <= 300 => s,
                _ => {
                    problems.push(format!(
                        "{ANNOTATION_PREFIX}drain-seconds: expected whole seconds 0-300, got `{raw}`"
                    ));
                    opts.drain_seconds
                }
            },
        };

        let [cpu_req, cpu_lim, mem_req, mem_lim] = quantities;
        let mut quantity = |key: &str, raw: Option<String>| -> Option<String> {
            let raw = raw?;
            if is_quantity(&raw) {
                Some(raw)
            } else {
                problems.push(format!(
                    "{ANNOTATION_PREFIX}{key}: `{raw}` is not a Kubernetes quantity (like 100m, 64Mi)"
                ));
                None
            }
        };
        let cpu_request =
            quantity("proxy-cpu-request", cpu_req).unwrap_or_else(|| opts.cpu_request.clone());
        let cpu_limit = quantity("proxy-cpu-limit", cpu_lim).or_else(|| opts.cpu_limit.clone());
        let memory_request = quantity("proxy-memory-request", mem_req)
            .unwrap_or_else(|| opts.memory_request.clone());
        let memory_limit =
            quantity("proxy-memory-limit", mem_lim).or_else(|| opts.memory_limit.clone());

        let config_map = match config_map {
            Some(name) if !is_dns_subdomain(&name) => {
                problems.push(format!(
                    "{ANNOTATION_PREFIX}config-map: `{name}` is not a valid ConfigMap name"
                ));
                None
            }
            Some(name) => Some(name),
            None => opts.config_map.clone(),
        };
        if let Some(name) = &admin_token_secret
            && !is_dns_subdomain(name)
        {
            problems.push(format!(
                "{ANNOTATION_PREFIX}admin-token-secret: `{name}` is not a valid Secret name"
            ));
        }
        if let Some(img) = &image
            && img.trim().is_empty()
        {
            problems.push(format!("{ANNOTATION_PREFIX}image: must not be empty"));
        }

        let service = service.or_else(|| {
            ["app.kubernetes.io/name", "app"]
                .iter()
                .find_map(|l| labels.get(*l).and_then(Value::as_str).map(str::to_owned))
        });

        if !problems.is_empty() {
            return Err(InjectError::Annotations { problems });
        }
        Ok(Self {
            image: image.unwrap_or_else(|| opts.image.clone()),
            mode,
            inbound_port,
            outbound_port,
            admin_port,
            app_port,
            service,
            otlp_endpoint: otlp.or_else(|| opts.otlp_endpoint.clone()),
            config_map,
            drain_seconds,
            cpu_request,
            cpu_limit,
            memory_request,
            memory_limit,
            skip_inbound_ports,
            skip_outbound_ports,
            admin_token_secret,
            identity_issuer: opts.identity_issuer.clone(),
        })
    }
}

/// A Kubernetes resource quantity: a decimal number with an optional SI or
/// binary suffix (`100m`, `0.5`, `64Mi`, `1G`, `1e3`). Checked here so that a
/// typo fails at injection, not as a pod the API server rejects.
pub(crate) fn is_quantity(raw: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    let Some(number) = SUFFIXES
        .iter()
        .find_map(|s| raw.strip_suffix(s).filter(|n| !n.is_empty()))
    else {
        return false;
    };
    let (mantissa, exponent) = match number.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (number, None),
    };
    let digits_ok = |s: &str| {
        let s = s.strip_prefix(['+', '-']).unwrap_or(s);
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && s.matches('.').count() <= 1
            && s != "."
    };
    digits_ok(mantissa) && exponent.is_none_or(|e| digits_ok(e) && !e.contains('.'))
}

/// RFC 1123 subdomain, the rule for ConfigMap names.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn quantities() {
        for ok in ["100m", "0.5", "64Mi", "1G", "1e3", "2", "1.5Gi"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Mi", "abc", "10 Mi", "1.2.3", "1e1.5", "."] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn annotations_override_defaults_and_labels_name_the_service() {
        let ann = map(json!({
            "weir.dev/mode": "explicit",
            "weir.dev/inbound-port": "5000",
            "weir.dev/proxy-cpu-limit": "1",
        }));
        let labels = map(json!({"app": "shop", "app.kubernetes.io/name": "catalog"}));
        let s = PodSettings::resolve(&InjectOptions::default(), &ann, &labels).expect("valid");
        assert_eq!(s.mode, Mode::Explicit);
        assert_eq!(s.inbound_port, 5000);
        assert_eq!(s.outbound_port, 4140);
        assert_eq!(s.cpu_limit.as_deref(), Some("1"));
        assert_eq!(s.service.as_deref(), Some("catalog"));
    }

    #[test]
    fn every_bad_annotation_is_reported_at_once() {
        let ann = map(json!({
            "weir.dev/mode": "magic",
            "weir.dev/admin-port": "99999",
            "weir.dev/proxy-memory-limit": "lots",
            "weir.dev/colour": "blue",
            "weir.dev/skip-outbound-ports": "5432,x",
        }));
        let Err(InjectError::Annotations { problems }) =
            PodSettings::resolve(&InjectOptions::default(), &ann, &Map::new())
        else {
            panic!("expected annotation errors");
        };
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("weir.dev/colour")));
    }
}
