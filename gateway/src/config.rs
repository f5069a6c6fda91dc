//! `gateway.yaml`: the file as written (serde, unknown fields rejected) and its
//! validation into errors that name the field.
//!
//! The full reference with every field, type and default is
//! `docs/configuration.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use proxy_core::admin::dashboard::DashboardConfig;
use proxy_core::config::{
    AdminConfig, ConfigErrors, EndpointAddr, HealthCheckConfig, HumanDuration, LimitsConfig,
    LoadBalancerKind, PoolConfig, Protocol, ShutdownConfig, UpstreamTimeouts, changed_fields,
    changed_values,
};
use proxy_core::telemetry::TelemetryConfig;
use proxy_core::tls::MinTlsVersion;
use serde::{Deserialize, Serialize};
use weir_identity::settings::{IdentityFile, IdentitySettings};

use crate::routing::{RouteConfig, VersioningConfig};

/// The whole gateway configuration file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub listeners: Vec<ListenerConfig>,
    pub admin: AdminConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub versioning: VersioningConfig,
    /// Credentials the gateway knows (API keys, JWT providers); see docs/policies.md.
    #[serde(default)]
    pub auth: weir_policy::config::AuthConfig,
    /// Named rate-limit policies and their backend; see docs/policies.md.
    #[serde(default)]
    pub rate_limits: weir_policy::config::RateLimitsConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// The admin listener's live dashboard (`GET /dashboard`): the sidecars
    /// its mesh view reads, the Jaeger UI its trace ids link to.
    #[serde(default)]
    pub dashboard: DashboardConfig,
    /// The gateway's own workload identity: where the certificate it
    /// presents to `upstreams.<name>.tls` upstreams comes from (the
    /// sidecar's section; see docs/identity.md#the-gateways-identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityFile>,
}

/// The gateway's `service_account` when `identity:` names none: there is no
/// `service` to default to, and `gateway` is the workload a mesh's
/// authorization rules name (`spiffe://<td>/ns/<ns>/sa/gateway`).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "gateway";

/// `listeners[]`: an address the gateway accepts client traffic on.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub name: String,
    pub address: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTlsConfig>,
}

/// `listeners[].tls`: terminate TLS, choosing the certificate by SNI.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    pub certificates: Vec<CertificateConfig>,
    #[serde(default)]
    pub min_version: MinTlsVersion,
}

/// A certificate chain and its key, as PEM files (relative to the config file).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `upstreams.<name>`: a service the gateway forwards to.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub endpoints: Vec<EndpointAddr>,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub load_balancer: LoadBalancerKind,
    #[serde(default)]
    pub timeouts: UpstreamTimeouts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckConfig>,
    #[serde(default)]
    pub pool: PoolConfig,
    #[serde(default)]
    pub passive_ejection: PassiveEjectionConfig,
    /// How often `dns:` endpoints are re-resolved.
    #[serde(default = "default_dns_refresh")]
    pub dns_refresh: HumanDuration,
    /// Mutual TLS to the upstream's sidecars with the gateway's own workload
    /// identity (absent: plaintext). Needs the gateway's `identity:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTlsConfig>,
}

/// `upstreams.<name>.tls`: the upstream is reached over mutual TLS, its
/// sidecars proving `identity` (absent: any identity of the trust domain).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    #[serde(default)]
    pub identity: Option<String>,
}

fn default_dns_refresh() -> HumanDuration {
    HumanDuration::from_secs(5)
}

/// `upstreams.<name>.passive_ejection`: an endpoint that refuses a connection
/// is taken out for `base`, doubling on each repeat up to `max`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveEjectionConfig {
    pub base: HumanDuration,
    pub max: HumanDuration,
}

impl Default for PassiveEjectionConfig {
    fn default() -> Self {
        Self {
            base: HumanDuration::from_secs(5),
            max: HumanDuration::from_secs(60),
        }
    }
}

impl GatewayConfig {
    /// Checks what serde cannot: names, addresses, sizes. Every problem is
    /// reported, each with its field path. Certificate files are read (once)
    /// by `snapshot::tls_configs`, routes by the route-table compiler.
    pub fn validate(&self) -> ConfigErrors {
        let mut errors = ConfigErrors::new();
        if self.listeners.is_empty() {
            errors.push("listeners", "at least one listener is required");
        }
        let mut names = std::collections::HashSet::new();
        let mut addrs = std::collections::HashSet::new();
        for (i, l) in self.listeners.iter().enumerate() {
            if !names.insert(l.name.as_str()) {
                errors.push(
                    format!("listeners[{i}].name"),
                    format!("duplicate listener name {:?}", l.name),
                );
            }
            // Port 0 asks the OS for a free port, so two such addresses never collide.
            let ephemeral = l.address.port() == 0;
            if !ephemeral && (!addrs.insert(l.address) || l.address == self.admin.address) {
                errors.push(
                    format!("listeners[{i}].address"),
                    format!("address {} is used twice", l.address),
                );
            }
            if let Some(tls) = &l.tls
                && tls.certificates.is_empty()
            {
                errors.push(
                    format!("listeners[{i}].tls.certificates"),
                    "at least one certificate is required",
                );
            }
        }
        for (name, u) in &self.upstreams {
            if let Some(id) = u.tls.as_ref().and_then(|t| t.identity.as_deref())
                && let Err(e) = proxy_core::identity::SpiffeId::parse(id)
            {
                errors.push(format!("upstreams.{name}.tls.identity"), e.to_string());
            }
            if u.endpoints.is_empty() {
                errors.push(
                    format!("upstreams.{name}.endpoints"),
                    "at least one endpoint is required",
                );
            }
            if let Some(hc) = &u.health_check {
                if !hc.path.starts_with('/') {
                    errors.push(
                        format!("upstreams.{name}.health_check.path"),
                        "must start with /",
                    );
                }
                if hc.healthy == 0 || hc.unhealthy == 0 {
                    errors.push(
                        format!("upstreams.{name}.health_check"),
                        "healthy and unhealthy must be at least 1",
                    );
                }
            }
        }
        if self.limits.max_connections == 0 {
            errors.push("limits.max_connections", "must be at least 1");
        }
        if self.limits.max_header_bytes.get() < 1024 {
            errors.push("limits.max_header_bytes", "must be at least 1KiB");
        }
        errors.extend(self.admin.validate("admin"));
        errors.extend(self.dashboard.validate("dashboard"));
        self.identity_settings(&mut errors);
        errors
    }

    /// The validated `identity:` section, `None` without one or when it is
    /// invalid (the problems then go to `errors`, named `identity.<field>`).
    pub fn identity_settings(&self, errors: &mut ConfigErrors) -> Option<IdentitySettings> {
        self.identity
            .as_ref()
            .and_then(|i| i.validate(DEFAULT_SERVICE_ACCOUNT, errors))
    }

    /// An upstream with `tls:` on a gateway that has no workload identity
    /// could only fail every connection (it never falls back to plaintext),
    /// so it is a config error naming the upstream's `tls`. Checked when
    /// the gateway has no credentials from elsewhere (an embedder's
    /// `Gateway::bind_with_credentials`).
    pub fn upstream_tls_without_identity(&self) -> ConfigErrors {
        let mut errors = ConfigErrors::new();
        if self.identity.is_some() {
            return errors;
        }
        for (name, u) in &self.upstreams {
            if u.tls.is_some() {
                errors.push(
                    format!("upstreams.{name}.tls"),
                    "mutual TLS needs the gateway's workload identity: add an `identity:` section",
                );
            }
        }
        errors
    }
}

/// `limits` fields every request reads from the current snapshot, so a
/// reload applies them; every other limit is fixed when the listeners start
/// serving (a limit added later is reported as needing a restart until it is
/// listed here, which errs on the side of telling the operator).
const LIVE_LIMITS: &[&str] = &["max_body_bytes"];

/// Field paths whose value in `new` differs from the config the gateway
/// `running` started with and that only a restart applies: listeners (their
/// set, names, addresses, and whether they speak TLS; certificates and
/// `min_version` reload), `admin`, `limits` but [`LIVE_LIMITS`], `telemetry`
/// (the exporter and log format are built once), `shutdown`, `dashboard`
/// and `identity` (its source starts once; a rotated certificate needs no
/// reload).
pub fn restart_required(running: &GatewayConfig, new: &GatewayConfig) -> Vec<String> {
    let mut out = Vec::new();
    if running.listeners.len() != new.listeners.len() {
        out.push("listeners".to_owned());
    } else {
        for (i, (a, b)) in running.listeners.iter().zip(&new.listeners).enumerate() {
            if a.name != b.name {
                out.push(format!("listeners[{i}].name"));
            }
            if a.address != b.address {
                out.push(format!("listeners[{i}].address"));
            }
            if a.tls.is_some() != b.tls.is_some() {
                out.push(format!("listeners[{i}].tls"));
            }
        }
    }
    out.extend(changed_fields("admin", &running.admin, &new.admin));
    if running.limits != new.limits {
        let fixed = |l: &LimitsConfig| {
            let mut v = serde_json::to_value(l).unwrap_or_default();
            if let Some(map) = v.as_object_mut() {
                map.retain(|k, _| !LIVE_LIMITS.contains(&k.as_str()));
            }
            v
        };
        changed_values(
            "limits",
            &fixed(&running.limits),
            &fixed(&new.limits),
            &mut out,
        );
    }
    out.extend(changed_fields(
        "telemetry",
        &running.telemetry,
        &new.telemetry,
    ));
    out.extend(changed_fields("shutdown", &running.shutdown, &new.shutdown));
    out.extend(changed_fields(
        "dashboard",
        &running.dashboard,
        &new.dashboard,
    ));
    out.extend(changed_fields("identity", &running.identity, &new.identity));
    out
}
