//! Starting and stopping the gateway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use proxy_core::admin::dashboard::{Dashboard, DashboardSettings};
use proxy_core::admin::{AdminAccess, AdminState, serve_admin};
use proxy_core::config::{ConfigErrors, read_yaml_file};
use proxy_core::identity::CredentialsWatch;
use proxy_core::mtls::CredentialSource;
use proxy_core::reload::Reloader;
use proxy_core::server::{ConnLimits, ServeOptions, serve};
use proxy_core::shutdown::{Shutdown, ShutdownTrigger};
use proxy_core::telemetry::Telemetry;
use tokio::net::TcpListener;

use crate::config::GatewayConfig;
use crate::dashboard::{GatewayDashboard, ReloadLog};
use crate::metrics::GatewayMetrics;
use crate::proxy::GatewayHandler;
use crate::snapshot::{Snapshot, apply_tls};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot bind {name} on {address}: {source}")]
    Bind {
        name: String,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("telemetry: {0}")]
    Telemetry(#[from] proxy_core::telemetry::TelemetryError),
    #[error("cannot start the workload identity: {0}")]
    Identity(#[from] weir_identity::IdentityError),
}

/// A gateway whose listeners are bound, ready to serve. Splitting binding from
/// serving lets tests bind `127.0.0.1:0` and read the real addresses.
pub struct Gateway {
    reloader: Arc<Reloader<Snapshot>>,
    metrics: Arc<GatewayMetrics>,
    registry: Arc<Registry>,
    telemetry: Arc<Telemetry>,
    listeners: Vec<(String, TcpListener, Option<proxy_core::server::TlsSource>)>,
    admin: TcpListener,
    admin_access: AdminAccess,
    reload_log: Arc<ReloadLog>,
    tls_sources: Arc<HashMap<String, proxy_core::server::TlsSource>>,
    /// The gateway's workload credentials, when it has an identity.
    identity: Option<CredentialsWatch>,
    /// Stops the `identity:` section's source (renewals, file watching)
    /// when the gateway stops; dropping it stops it too.
    identity_stop: Option<ShutdownTrigger>,
}

impl Gateway {
    /// Loads and validates the config, starts the workload identity its
    /// `identity:` section names (if any), then binds every listener.
    /// Nothing is bound when the config is invalid.
    pub async fn bind(
        config_path: impl Into<PathBuf>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GatewayError> {
        Self::bind_with_credentials(config_path, env, None).await
    }

    /// [`bind`](Self::bind) with the gateway's workload identity: upstreams
    /// with `tls:` are reached over mutual TLS presenting the latest
    /// credentials on `credentials` (each new connection reads them, so
    /// rotations need no reload). `Some` is used instead of the file's
    /// `identity:` section, which is then not started; `None` starts the
    /// section's source, as `bind` does.
    pub async fn bind_with_credentials(
        config_path: impl Into<PathBuf>,
        env: impl Fn(&str) -> Option<String>,
        credentials: Option<CredentialsWatch>,
    ) -> Result<Self, GatewayError> {
        let path: PathBuf = config_path.into();
        let mut registry = Registry::default();
        let (identity, identity_stop) = match credentials {
            Some(watch) => (Some(watch), None),
            None => match start_identity(&path, &mut registry).await? {
                Some((watch, stop)) => (Some(watch), Some(stop)),
                None => (None, None),
            },
        };
        let mesh = identity.clone().map(CredentialSource::new);
        let metrics = Arc::new(GatewayMetrics::default());
        let build_metrics = metrics.clone();
        // Rate-limit counters, Redis connections and JWKS caches outlive reloads.
        let policy_state = weir_policy::PolicyState::new();
        let build_policy_state = policy_state.clone();
        let tls_cell: Arc<
            std::sync::OnceLock<Arc<HashMap<String, proxy_core::server::TlsSource>>>,
        > = Arc::new(std::sync::OnceLock::new());
        let cell = tls_cell.clone();
        let reload_log = Arc::new(ReloadLog::default());
        let log = reload_log.clone();
        let reloader = Reloader::new(
            path.clone(),
            move |p: &Path, prev: Option<&Snapshot>| {
                let built =
                    Snapshot::build(p, prev, &build_metrics, &build_policy_state, mesh.as_ref());
                if prev.is_some() {
                    log.record(built.as_ref().map(drop).map_err(|e| e.to_string()));
                }
                let snap = built?;
                if let Some(sources) = cell.get() {
                    apply_tls(&snap, sources);
                }
                Ok(snap)
            },
            metrics.reloads.clone(),
        )?;
        let snapshot = reloader.current().load_full();
        let config = snapshot.config.clone();
        // Listeners, limits, admin and telemetry are set up once, below, from
        // this first config; a reload that changes them must say so.
        let running = config.clone();
        let reloader = Arc::new(reloader.with_restart_check(move |s: &Snapshot| {
            crate::config::restart_required(&running, &s.config)
        }));
        let admin_access =
            AdminAccess::resolve(&config.admin, path.parent().unwrap_or(Path::new(".")), &env)?;

        let settings =
            config
                .telemetry
                .resolve("telemetry", "gateway", env!("CARGO_PKG_VERSION"), &env)?;
        let telemetry = Arc::new(Telemetry::init(&settings)?);

        metrics.register(&mut registry, reloader.current().clone());
        policy_state.register_metrics(&mut registry);
        telemetry.register_metrics(&mut registry);

        let mut listeners = Vec::new();
        let mut sources = HashMap::new();
        for l in &config.listeners {
            let address = override_addr(
                &env,
                &format!("WEIR_LISTENER_{}_ADDRESS", env_key(&l.name)),
                l.address,
            );
            let listener = bind(address).await.map_err(|source| GatewayError::Bind {
                name: l.name.clone(),
                address,
                source,
            })?;
            let tls = snapshot
                .tls
                .get(&l.name)
                .map(|cfg| Arc::new(ArcSwap::new(cfg.clone())));
            if let Some(t) = &tls {
                sources.insert(l.name.clone(), t.clone());
            }
            listeners.push((l.name.clone(), listener, tls));
        }
        let admin_addr = override_addr(&env, "WEIR_ADMIN_ADDRESS", config.admin.address);
        let admin = bind(admin_addr)
            .await
            .map_err(|source| GatewayError::Bind {
                name: "admin".into(),
                address: admin_addr,
                source,
            })?;
        let tls_sources = Arc::new(sources);
        let _ = tls_cell.set(tls_sources.clone());
        Ok(Self {
            reloader,
            metrics,
            registry: Arc::new(registry),
            telemetry,
            listeners,
            admin,
            admin_access,
            reload_log,
            tls_sources,
            identity,
            identity_stop,
        })
    }

    /// Bound addresses by listener name (plus `admin`).
    pub fn local_addrs(&self) -> HashMap<String, SocketAddr> {
        let mut out: HashMap<String, SocketAddr> = self
            .listeners
            .iter()
            .filter_map(|(n, l, _)| Some((n.clone(), l.local_addr().ok()?)))
            .collect();
        if let Ok(a) = self.admin.local_addr() {
            out.insert("admin".into(), a);
        }
        out
    }

    /// The reloader, for tests and embedding.
    pub fn reloader(&self) -> Arc<Reloader<Snapshot>> {
        self.reloader.clone()
    }

    /// Serves until `shutdown`, then drains for the configured time.
    pub async fn serve(self, shutdown: Shutdown) {
        let snapshot = self.reloader.current().load_full();
        let limits = ConnLimits::from(&snapshot.config.limits);
        let drain = snapshot.config.shutdown.drain.get();
        let handler = GatewayHandler {
            state: self.reloader.current().clone(),
            metrics: self.metrics.clone(),
            telemetry: self.telemetry.clone(),
        };
        let mut admin_state = AdminState::new(self.registry.clone(), {
            let cur = self.reloader.current().clone();
            Arc::new(move || cur.load().effective_config())
        });
        let reloader = self.reloader.clone();
        admin_state.reload = Some(Arc::new(move || {
            reloader.reload_report().map_err(|e| e.to_string())
        }));
        admin_state.access = self.admin_access;
        let source = GatewayDashboard::new(
            self.reloader.current().clone(),
            self.registry.clone(),
            self.reloader.metrics().clone(),
            self.reload_log.clone(),
        )
        .with_identity(self.identity.clone());
        admin_state.dashboard = Some(Dashboard::new(
            Arc::new(source),
            DashboardSettings::from(&snapshot.config.dashboard),
        ));
        let ready = admin_state.ready.clone();

        self.reloader.spawn_watchers(shutdown.clone());
        // The admin listener first: `/healthz` answers (and `/readyz` says
        // 503) while the client listeners wait for the first certificate.
        let admin_shutdown = shutdown.clone();
        let admin_task = tokio::spawn(serve_admin(self.admin, admin_state, admin_shutdown));
        let started = match self.identity.clone() {
            Some(watch) => first_certificate(watch, &shutdown).await,
            None => true,
        };
        let listeners = if started { self.listeners } else { Vec::new() };
        let mut tasks = Vec::new();
        for (name, listener, tls) in listeners {
            let opts = ServeOptions {
                limits: limits.clone(),
                tls,
                drain,
                active_connections: Some(self.metrics.active_connections.clone()),
            };
            let handler = handler.clone();
            let shutdown = shutdown.clone();
            tracing::info!(listener = %name, address = ?listener.local_addr().ok(), "listening");
            tasks.push(tokio::spawn(serve(listener, opts, handler, shutdown)));
        }
        ready.store(started, Ordering::Relaxed);
        shutdown.wait().await;
        ready.store(false, Ordering::Relaxed);
        tracing::info!(?drain, "shutting down: draining in-flight requests");
        for t in tasks {
            let _ = t.await;
        }
        let _ = admin_task.await;
        self.telemetry
            .shutdown(std::time::Duration::from_secs(5))
            .await;
        drop(self.tls_sources);
        // Renewals go on through the drain and stop with the gateway.
        drop(self.identity_stop);
    }
}

/// Starts the credentials source of the file's `identity:` section, if it
/// has a valid one; it runs until the returned trigger is dropped. An
/// invalid section starts nothing: building the first snapshot then reports
/// its errors along with every other problem in the file. (The file is read
/// once more by the reloader; `identity` is restart-only, so the source
/// started here is the one the gateway keeps.)
async fn start_identity(
    path: &Path,
    registry: &mut Registry,
) -> Result<Option<(CredentialsWatch, ShutdownTrigger)>, GatewayError> {
    let mut file: GatewayConfig = read_yaml_file(path)?;
    let Some(section) = &mut file.identity else {
        return Ok(None);
    };
    section.resolve_paths(path.parent().unwrap_or(Path::new(".")));
    let Some(settings) = file.identity_settings(&mut ConfigErrors::new()) else {
        return Ok(None);
    };
    let (stop, shutdown) = proxy_core::shutdown::channel();
    let watch = weir_identity::start(&settings, registry, shutdown).await?;
    Ok(Some((watch, stop)))
}

/// Waits for the gateway's first certificate (an issuer's arrives after
/// start; files are loaded before it): until then an upstream with `tls:`
/// could only fail, so the client listeners hold their connections in the
/// accept queue. False when shutdown comes first.
async fn first_certificate(mut watch: CredentialsWatch, shutdown: &Shutdown) -> bool {
    if watch.borrow().is_some() {
        return true;
    }
    tracing::info!("waiting for the gateway's first workload certificate");
    tokio::select! {
        got = watch.wait_for(Option::is_some) => {
            if got.is_err() {
                // The source is gone without a certificate; serve anyway
                // (mTLS upstreams fail, plaintext ones work).
                tracing::error!("the workload identity source stopped before a certificate arrived");
            }
            true
        }
        () = shutdown.wait() => false,
    }
}

/// Loads the config at `config_path`, binds, and serves until `shutdown`.
pub async fn run(config_path: impl Into<PathBuf>, shutdown: Shutdown) -> Result<(), GatewayError> {
    let gw = Gateway::bind(config_path, |k| std::env::var(k).ok()).await?;
    gw.serve(shutdown).await;
    Ok(())
}

fn env_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn override_addr(
    env: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: SocketAddr,
) -> SocketAddr {
    match env(key) {
        Some(v) => match v.parse() {
            Ok(a) => a,
            Err(_) => {
                tracing::warn!(%key, value = %v, "ignoring invalid address override");
                default
            }
        },
        None => default,
    }
}

async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}
