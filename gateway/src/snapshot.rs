//! The gateway's runtime state, built whole from a config file and swapped in
//! one `ArcSwap::store` (see `proxy_core::reload`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use std::time::SystemTime;

use arc_swap::ArcSwap;
use proxy_core::admin::dashboard::{CertSummary, SlowRing, summarize_certificate};
use proxy_core::config::{ConfigErrors, LimitsConfig, read_yaml_file};
use proxy_core::hash::FastMap;
use proxy_core::mtls::CredentialSource;
use serde_json::Value;

use weir_policy::{Policies, PolicyState, RoutePolicy, RouteRef};

use crate::config::GatewayConfig;
use crate::metrics::{GatewayMetrics, RouteHandles};
use crate::routing::RouteTable;
use crate::upstream::Upstream;

/// Everything a request needs, consistent with one version of the config.
pub struct Snapshot {
    pub config: Arc<GatewayConfig>,
    pub routes: RouteTable,
    pub upstreams: FastMap<String, Arc<Upstream>>,
    /// Metric handles by route index.
    pub route_metrics: Vec<RouteHandles>,
    /// The path pattern of each route (`/products/{id}`, `/products/*`), by
    /// route index, for the `http.route` span attribute.
    pub route_paths: Vec<String>,
    /// Metric handles for requests no route took (404, 405), as `route="unmatched"`.
    pub unmatched_metrics: RouteHandles,
    pub limits: LimitsConfig,
    /// TLS settings by listener name.
    pub tls: HashMap<String, Arc<rustls::ServerConfig>>,
    /// Authentication, rate limiting and CORS of this config generation.
    pub policies: Policies,
    /// Compiled policies by route index.
    pub route_policies: Vec<RoutePolicy>,
    /// The slowest recent requests by route index, for the dashboard's
    /// trace links (one atomic compare per response; see `SlowRing`).
    pub route_outliers: Vec<SlowRing>,
    /// 1 for the config the gateway started with, +1 per accepted reload.
    pub generation: u64,
    pub loaded_at: SystemTime,
    /// A digest of the effective config (secrets excluded), to tell two
    /// generations apart at a glance.
    pub digest: String,
    /// Serving certificates by listener, for the dashboard.
    pub certificates: Vec<CertificateView>,
}

/// One serving certificate as the dashboard shows it.
#[derive(Clone, Debug)]
pub struct CertificateView {
    pub listener: String,
    pub summary: Result<CertSummary, String>,
}

/// Parses and validates a file without building anything (for `validate`):
/// the same checks a build makes, without starting background tasks.
pub fn load_config(path: &Path) -> Result<GatewayConfig, ConfigErrors> {
    let config: GatewayConfig = read_yaml_file(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut errors = config.validate();
    errors.extend(config.upstream_tls_without_identity());
    errors.extend(tls_configs(&config, base).2);
    let paths: Vec<String> = (0..config.routes.len())
        .map(|i| format!("routes[{i}]"))
        .collect();
    if let Err(e) = weir_policy::config::validate(
        &config.auth,
        &config.rate_limits,
        base,
        config
            .routes
            .iter()
            .zip(&paths)
            .map(|(r, p)| route_ref(r, p)),
    ) {
        errors.extend(e);
    }
    if let Err(e) = compile_routes(&config) {
        errors.extend(e);
    }
    errors.into_result(config)
}

fn compile_routes(config: &GatewayConfig) -> Result<RouteTable, ConfigErrors> {
    RouteTable::compile(&config.routes, &config.versioning, &|name| {
        config.upstreams.contains_key(name)
    })
    .map_err(|route_errors| {
        let mut errors = ConfigErrors::new();
        for e in route_errors {
            errors.push(e.field.clone(), e.kind.to_string());
        }
        errors
    })
}

/// The TLS settings of every TLS listener, by listener name, reading each
/// certificate file once; problems name the certificate's field. Also what
/// the dashboard shows of each leaf certificate.
type TlsBuild = (
    HashMap<String, Arc<rustls::ServerConfig>>,
    Vec<CertificateView>,
    ConfigErrors,
);

fn tls_configs(config: &GatewayConfig, base_dir: &Path) -> TlsBuild {
    let mut errors = ConfigErrors::new();
    let mut tls = HashMap::new();
    let mut views = Vec::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let Some(t) = &l.tls else { continue };
        let mut keys = Vec::new();
        for (j, c) in t.certificates.iter().enumerate() {
            match proxy_core::tls::load_certified_key(
                &base_dir.join(&c.cert),
                &base_dir.join(&c.key),
            ) {
                Ok(k) => {
                    views.push(CertificateView {
                        listener: l.name.clone(),
                        summary: k
                            .cert
                            .first()
                            .ok_or_else(|| "empty chain".to_owned())
                            .and_then(|c| summarize_certificate(c)),
                    });
                    keys.push(k);
                }
                Err(e) => errors.push(
                    format!("listeners[{i}].tls.certificates[{j}]"),
                    e.to_string(),
                ),
            }
        }
        match proxy_core::tls::server_config(keys, t.min_version) {
            Ok(sc) => {
                tls.insert(l.name.clone(), Arc::new(sc));
            }
            Err(e) => errors.push(format!("listeners[{i}].tls"), e.to_string()),
        }
    }
    (tls, views, errors)
}

impl Snapshot {
    /// Builds the runtime state; `previous` lends the upstreams whose config
    /// did not change. Must run inside a tokio runtime (health checks, DNS
    /// and JWKS refresh, Redis clients start in the background).
    pub fn build(
        path: &Path,
        previous: Option<&Snapshot>,
        metrics: &GatewayMetrics,
        policy_state: &PolicyState,
        mesh: Option<&CredentialSource>,
    ) -> Result<Self, ConfigErrors> {
        let config: GatewayConfig = read_yaml_file(path)?;
        Self::from_config(
            config,
            path.parent().unwrap_or(Path::new(".")),
            previous,
            metrics,
            policy_state,
            mesh,
        )
    }

    /// `mesh`: the gateway's workload credentials (upstreams with `tls:`;
    /// without them such an upstream is a config error unless the file has
    /// an `identity:` section, which a restart starts).
    pub fn from_config(
        config: GatewayConfig,
        base_dir: &Path,
        previous: Option<&Snapshot>,
        metrics: &GatewayMetrics,
        policy_state: &PolicyState,
        mesh: Option<&CredentialSource>,
    ) -> Result<Self, ConfigErrors> {
        // Each check runs once here: this is the reload path, and a large
        // route table should not be compiled twice per reload.
        let mut errors = config.validate();
        if mesh.is_none() {
            errors.extend(config.upstream_tls_without_identity());
        }
        let (tls, certificates, tls_errors) = tls_configs(&config, base_dir);
        errors.extend(tls_errors);
        let routes = match compile_routes(&config) {
            Ok(t) => Some(t),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        let Some(routes) = routes.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        let policies = Policies::build(&config.auth, &config.rate_limits, base_dir, policy_state)?;
        let mut route_policies = Vec::with_capacity(routes.len());
        for (i, r) in config.routes.iter().enumerate() {
            let path = format!("routes[{i}]");
            match policies.route(route_ref(r, &path)) {
                Ok(p) => route_policies.push(p),
                Err(e) => errors.extend(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let upstreams = config
            .upstreams
            .iter()
            .map(|(name, cfg)| {
                let prev = previous.and_then(|p| p.upstreams.get(name));
                (
                    name.clone(),
                    Upstream::reuse_or_build(name, cfg, prev, mesh),
                )
            })
            .collect();
        let route_metrics = routes
            .routes()
            .iter()
            .map(|r| metrics.route_handles(r.name()))
            .collect();
        let route_paths = routes
            .routes()
            .iter()
            .map(|r| r.path().to_string())
            .collect();
        let route_outliers = routes.routes().iter().map(|_| SlowRing::new()).collect();
        let digest = config_digest(&config);
        Ok(Self {
            route_outliers,
            generation: previous.map_or(1, |p| p.generation + 1),
            loaded_at: SystemTime::now(),
            digest,
            certificates,
            limits: config.limits.clone(),
            config: Arc::new(config),
            routes,
            upstreams,
            route_metrics,
            unmatched_metrics: metrics.route_handles("unmatched"),
            route_paths,
            tls,
            policies,
            route_policies,
        })
    }

    /// The effective config as JSON for `GET /config`. Secrets (API-key
    /// hashes, HMAC secrets, collector headers, Redis passwords) are typed
    /// `Secret`/`SecretUrl` wherever they are declared and serialize as
    /// `<redacted>`.
    pub fn effective_config(&self) -> Value {
        serde_json::to_value(&*self.config).unwrap_or(Value::Null)
    }
}

/// A digest of the config's serialisation (secrets serialize redacted), fed
/// to the hasher as it is written: a large route table is not turned into
/// one large string on every reload.
fn config_digest(config: &GatewayConfig) -> String {
    use std::hash::Hasher;
    struct Feed(std::hash::DefaultHasher);
    impl std::io::Write for Feed {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut feed = Feed(std::hash::DefaultHasher::new());
    let _ = serde_json::to_writer(&mut feed, config);
    format!("{:016x}", feed.0.finish())
}

fn route_ref<'a>(r: &'a crate::routing::RouteConfig, path: &'a str) -> RouteRef<'a> {
    RouteRef {
        name: &r.name,
        path,
        auth: r.auth.as_ref(),
        rate_limit: r.rate_limit.as_deref(),
        cors: r.cors.as_ref(),
    }
}

/// Points every TLS listener at the certificates of the current snapshot.
pub fn apply_tls(
    snapshot: &Snapshot,
    sources: &HashMap<String, Arc<ArcSwap<rustls::ServerConfig>>>,
) {
    for (name, source) in sources {
        if let Some(cfg) = snapshot.tls.get(name) {
            source.store(cfg.clone());
        }
    }
}
