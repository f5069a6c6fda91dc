//! `sidecar.yaml`: the file shape, environment overrides, and validation into
//! the typed [`SidecarConfig`] the runtime is built from.
//!
//! Loading goes file → raw serde structs (unknown fields are errors, each with
//! its path and line) → environment overrides → validation that reports every
//! problem at once. The environment is read through an injected lookup so tests
//! pass a map and nothing mutates the process environment.
//!
//! Environment overrides (what a Kubernetes deployment varies per pod):
//!
//! | variable | overrides |
//! | --- | --- |
//! | `WEIR_SERVICE` | `service` |
//! | `WEIR_INBOUND_ADDRESS` | `inbound.address` |
//! | `WEIR_APP_ADDRESS` | `inbound.app` |
//! | `WEIR_OUTBOUND_ADDRESS` | `outbound.address` |
//! | `WEIR_MODE` | `outbound.transparent` (`transparent` or `explicit`, as the injector sets it) |
//! | `WEIR_OUTBOUND_TRANSPARENT` | `outbound.transparent` (`true`/`false`) |
//! | `WEIR_ADMIN_ADDRESS` | `admin.address` |
//! | `WEIR_ADMIN_TOKEN`, `WEIR_ADMIN_TOKEN_FILE` | `admin.token_file` (the bearer token `POST /reload` requires) |
//! | `OTEL_*` | `telemetry` (see `proxy_core::telemetry::config`) |
//! | `WEIR_IDENTITY_*` | `identity` (see `weir_identity::settings`) |

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use proxy_core::admin::AdminAccess;
use proxy_core::config::{
    AdminConfig, ConfigError, ConfigErrors, EndpointAddr, HumanDuration, LimitsConfig,
    LoadBalancerKind, PoolConfig, Protocol, ShutdownConfig, parse_yaml,
};
use proxy_core::resilience::config::{CircuitBreakerConfig, RetryConfig, TimeoutsConfig};
use proxy_core::resilience::{BreakerSettings, BudgetSettings, RetryPolicy};
use proxy_core::server::ConnLimits;
use proxy_core::telemetry::{TelemetryConfig, TelemetrySettings};
use serde::{Deserialize, Serialize};

use self::mesh::{
    AuthorizationFile, AuthorizationSettings, InboundTlsFile, InboundTlsMode, ServiceTls,
    ServiceTlsFile,
};

/// The well-known server-speaks-first ports proxied as plain TCP in
/// transparent mode: SMTP, MySQL, NATS, PostgreSQL, AMQP, Redis.
pub const DEFAULT_OPAQUE_PORTS: &[u16] = &[25, 3306, 4222, 5432, 5672, 6379];

/// The whole file as written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SidecarFile {
    /// This pod's service (used in metrics, spans and logs).
    pub service: String,
    pub inbound: InboundFile,
    #[serde(default)]
    pub outbound: OutboundFile,
    /// Destinations by logical name (the `Host` the app calls).
    #[serde(default)]
    pub services: BTreeMap<String, ServiceFile>,
    pub admin: AdminConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// What one client connection may cost, on every listener (inbound,
    /// outbound, transparent, admin): the same section and defaults as the
    /// gateway's `limits:`.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Where the mTLS certificate comes from (absent: no workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityFile>,
}

/// `inbound:` traffic for the local app.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InboundFile {
    pub address: SocketAddr,
    /// The app's own listener.
    pub app: SocketAddr,
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_requests: usize,
    #[serde(default = "default_inbound_timeout")]
    pub timeout: HumanDuration,
    /// How the sidecar talks to the app.
    #[serde(default)]
    pub protocol: Protocol,
    /// Path of the app's health endpoint, probed for the sidecar's `/readyz`
    /// (absent: the app counts as ready when its port accepts connections).
    #[serde(default)]
    pub app_health_path: Option<String>,
    /// TLS detection on the port and whether clients need a certificate.
    #[serde(default)]
    pub tls: InboundTlsFile,
    /// Which identities may call which paths and methods.
    #[serde(default)]
    pub authorization: AuthorizationFile,
}

fn default_max_concurrent() -> usize {
    1000
}

fn default_inbound_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

/// `outbound:` the app's calls to other services.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundFile {
    pub address: SocketAddr,
    /// Accept connections redirected by iptables and recover their original
    /// destination (`SO_ORIGINAL_DST`).
    pub transparent: bool,
    /// Ports proxied as plain TCP without protocol detection.
    pub opaque_ports: Vec<u16>,
    /// How long to wait for a client's first bytes before treating the
    /// connection as opaque TCP.
    pub detect_timeout: HumanDuration,
}

impl Default for OutboundFile {
    fn default() -> Self {
        OutboundFile {
            address: SocketAddr::from(([127, 0, 0, 1], 4140)),
            transparent: false,
            opaque_ports: DEFAULT_OPAQUE_PORTS.to_vec(),
            detect_timeout: HumanDuration::from_secs(1),
        }
    }
}

/// `services.<name>:` one destination.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// `host:port`, or `dns: name:port` re-resolved every `dns_refresh`.
    pub endpoints: Vec<EndpointAddr>,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default = "default_lb")]
    pub load_balancer: LoadBalancerKind,
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Absent: the safe defaults (idempotent requests, 502/503/504 and connect
    /// errors, 3 tries, budget 20 % + 10/s). `max_attempts: 1` turns retries off.
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    #[serde(default = "default_dns_refresh")]
    pub dns_refresh: HumanDuration,
    #[serde(default)]
    pub pool: PoolConfig,
    /// Mutual TLS to the destination's sidecars, or plaintext.
    #[serde(default)]
    pub tls: ServiceTlsFile,
}

fn default_lb() -> LoadBalancerKind {
    LoadBalancerKind::P2cEwma
}

fn default_dns_refresh() -> HumanDuration {
    HumanDuration::from_secs(5)
}

/// The validated inbound side.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundSettings {
    pub address: SocketAddr,
    pub app: SocketAddr,
    pub max_concurrent_requests: usize,
    pub timeout: Duration,
    pub protocol: Protocol,
    pub app_health_path: Option<String>,
    pub tls: InboundTlsMode,
    pub authorization: AuthorizationSettings,
}

/// The validated outbound side.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundSettings {
    pub address: SocketAddr,
    pub transparent: bool,
    pub opaque_ports: Vec<u16>,
    pub detect_timeout: Duration,
}

/// One validated destination.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSettings {
    pub name: String,
    pub endpoints: Vec<EndpointAddr>,
    pub protocol: Protocol,
    pub load_balancer: LoadBalancerKind,
    pub connect_timeout: Duration,
    pub per_try_timeout: Option<Duration>,
    pub overall_timeout: Option<Duration>,
    pub retry: RetryPolicy,
    pub budget: BudgetSettings,
    pub breaker: BreakerSettings,
    pub dns_refresh: Duration,
    pub pool: PoolConfig,
    pub tls: ServiceTls,
}

/// The validated sidecar configuration.
#[derive(Clone, Debug)]
pub struct SidecarConfig {
    pub service: String,
    pub inbound: InboundSettings,
    pub outbound: OutboundSettings,
    pub services: BTreeMap<String, ServiceSettings>,
    pub admin: SocketAddr,
    /// Who may use the admin listener (`admin.allowed_hosts`, the token).
    pub admin_access: AdminAccess,
    pub telemetry: TelemetrySettings,
    pub drain: Duration,
    /// Connection limits of every listener (`limits:`).
    pub limits: ConnLimits,
    /// The workload identity and its source (`identity:`).
    pub identity: Option<IdentitySettings>,
    /// The file after environment overrides (served on `/config`).
    pub effective: SidecarFile,
}

impl SidecarConfig {
    /// Reads, overrides and validates the file at `path`.
    pub fn load(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SidecarConfig, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::from(ConfigError::new(
                "",
                format!("cannot read {}: {e}", path.display()),
            ))
        })?;
        let mut file: SidecarFile = parse_yaml(&text)?;
        apply_env(&mut file, env)?;
        // A relative token file is next to the config file, like every path in it.
        if let (Some(tf), Some(dir)) = (&mut file.admin.token_file, path.parent())
            && tf.is_relative()
        {
            *tf = dir.join(&*tf);
        }
        if let (Some(id), Some(dir)) = (&mut file.identity, path.parent()) {
            id.resolve_paths(dir);
        }
        file.validate(env)
    }

    /// A configuration from the environment alone (a pod injected without a
    /// ConfigMap): the default ports, the app at `WEIR_APP_ADDRESS` (default
    /// `127.0.0.1:8080`), no named destinations (transparent traffic passes
    /// through to where the app dialled).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<SidecarConfig, ConfigErrors> {
        let mut file = SidecarFile {
            service: "app".into(),
            inbound: InboundFile {
                address: SocketAddr::from(([0, 0, 0, 0], 4143)),
                app: SocketAddr::from(([127, 0, 0, 1], 8080)),
                max_concurrent_requests: default_max_concurrent(),
                timeout: default_inbound_timeout(),
                protocol: Protocol::default(),
                app_health_path: None,
                tls: InboundTlsFile::default(),
                authorization: AuthorizationFile::default(),
            },
            outbound: OutboundFile::default(),
            services: BTreeMap::new(),
            admin: AdminConfig::at(SocketAddr::from(([0, 0, 0, 0], 4191))),
            telemetry: TelemetryConfig::default(),
            shutdown: ShutdownConfig::default(),
            limits: LimitsConfig::default(),
            identity: None,
        };
        apply_env(&mut file, env)?;
        file.validate(env)
    }

    /// Parses, overrides and validates YAML text.
    pub fn from_yaml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SidecarConfig, ConfigErrors> {
        let mut file: SidecarFile = parse_yaml(text)?;
        apply_env(&mut file, env)?;
        file.validate(env)
    }
}

fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

impl SidecarFile {
    /// Validates the whole file, reporting every problem with its path.
    pub fn validate(
        self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SidecarConfig, ConfigErrors> {
        let mut errs = ConfigErrors::new();
        if !valid_service_name(&self.service) {
            errs.push("service", "must be a lowercase DNS-style name");
        }
        let inb = &self.inbound;
        if inb.max_concurrent_requests == 0 {
            errs.push("inbound.max_concurrent_requests", "must be at least 1");
        }
        if inb.timeout.get().is_zero() {
            errs.push("inbound.timeout", "must be more than 0s");
        }
        if let Some(p) = &inb.app_health_path
            && !p.starts_with('/')
        {
            errs.push("inbound.app_health_path", "must start with /");
        }
        if self.limits.max_body_bytes != LimitsConfig::default().max_body_bytes {
            // The section is shared with the gateway; refuse what the sidecar
            // would silently ignore rather than pretend to apply it.
            errs.push(
                "limits.max_body_bytes",
                "the sidecar does not limit request bodies; remove it",
            );
        }
        if self.limits.max_connections == 0 {
            errs.push("limits.max_connections", "must be at least 1");
        }
        let out = &self.outbound;
        if out.detect_timeout.get().is_zero() {
            errs.push("outbound.detect_timeout", "must be more than 0s");
        }
        if out.opaque_ports.contains(&0) {
            errs.push("outbound.opaque_ports", "0 is not a port");
        }
        let ports = [
            ("inbound.address", inb.address),
            ("outbound.address", out.address),
            ("admin.address", self.admin.address),
        ];
        for (i, (name, a)) in ports.iter().enumerate() {
            if a.port() != 0 && ports[..i].iter().any(|(_, b)| b == a) {
                errs.push(*name, format!("{a} is already used by another listener"));
            }
        }
        if inb.app == inb.address {
            errs.push(
                "inbound.app",
                "must differ from inbound.address (it would loop)",
            );
        }

        let authorization = inb
            .authorization
            .validate("inbound.authorization", &mut errs);
        let mut services = BTreeMap::new();
        for (name, svc) in &self.services {
            let base = format!("services.{name}");
            if !valid_service_name(name) {
                errs.push(
                    base.clone(),
                    "service names must be lowercase DNS-style names",
                );
            }
            if svc.endpoints.is_empty() {
                errs.push(format!("{base}.endpoints"), "needs at least one endpoint");
            }
            svc.timeouts
                .validate(&format!("{base}.timeouts"), &mut errs);
            let (retry, budget) = svc.retry.validate(&format!("{base}.retry"), &mut errs);
            let breaker = svc
                .circuit_breaker
                .validate(&format!("{base}.circuit_breaker"), &mut errs);
            let tls = svc.tls.validate(&format!("{base}.tls"), &mut errs);
            if svc.dns_refresh.get() < Duration::from_millis(100) {
                errs.push(format!("{base}.dns_refresh"), "must be at least 100ms");
            }
            services.insert(
                name.clone(),
                ServiceSettings {
                    name: name.clone(),
                    endpoints: svc.endpoints.clone(),
                    protocol: svc.protocol,
                    load_balancer: svc.load_balancer,
                    connect_timeout: svc.timeouts.connect.get(),
                    per_try_timeout: svc.timeouts.per_try.map(HumanDuration::get),
                    overall_timeout: svc.timeouts.overall.map(HumanDuration::get),
                    retry,
                    budget,
                    breaker,
                    dns_refresh: svc.dns_refresh.get(),
                    pool: svc.pool.clone(),
                    tls,
                },
            );
        }

        let identity = self
            .identity
            .as_ref()
            .and_then(|i| i.validate(&self.service, &mut errs));
        // `load` has made a relative `admin.token_file` relative to the file.
        let admin_access = match AdminAccess::resolve(&self.admin, Path::new("."), env) {
            Ok(a) => a,
            Err(e) => {
                errs.extend(e);
                AdminAccess::local_only()
            }
        };
        let default_name = format!("{}-sidecar", self.service);
        let telemetry =
            match self
                .telemetry
                .resolve("telemetry", &default_name, env!("CARGO_PKG_VERSION"), env)
            {
                Ok(t) => Some(t),
                Err(e) => {
                    errs.extend(e);
                    None
                }
            };
        let (Some(telemetry), true) = (telemetry, errs.is_empty()) else {
            return Err(errs);
        };
        Ok(SidecarConfig {
            service: self.service.clone(),
            inbound: InboundSettings {
                address: inb.address,
                app: inb.app,
                max_concurrent_requests: inb.max_concurrent_requests,
                timeout: inb.timeout.get(),
                protocol: inb.protocol,
                app_health_path: inb.app_health_path.clone(),
                tls: inb.tls.mode,
                authorization,
            },
            outbound: OutboundSettings {
                address: out.address,
                transparent: out.transparent,
                opaque_ports: out.opaque_ports.clone(),
                detect_timeout: out.detect_timeout.get(),
            },
            services,
            admin: self.admin.address,
            admin_access,
            telemetry,
            drain: self.shutdown.drain.get(),
            limits: ConnLimits::from(&self.limits),
            identity,
            effective: self,
        })
    }
}

mod env;
mod identity;
pub mod mesh;
mod restart;

pub use env::apply_env;
pub use identity::{
    DEFAULT_TRUST_DOMAIN, FilesFile, IdentityFile, IdentitySettings, IdentitySource, IssuerFile,
};
pub use restart::restart_required;

#[cfg(test)]
mod tests;
