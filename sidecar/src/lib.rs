//! The Weir sidecar: a per-service proxy that makes calls between services
//! resilient and visible.
//!
//! It runs next to one app (in its pod, or as a process beside it locally):
//! **inbound** traffic is forwarded to the app under a concurrency limit and a
//! timeout; the app's **outbound** calls, by logical service name (explicit
//! mode, `HTTP_PROXY`) or redirected by iptables (transparent mode), go through
//! a per-destination stack of timeouts, budgeted retries, per-endpoint circuit
//! breaking and P2C load balancing (the stack is drawn in `destination.rs`).
//! The admin listener serves `/healthz`, `/readyz` (only once
//! listeners are bound, the config is loaded and the app answers), `/metrics`,
//! `/config`, `/state`, the live `/dashboard` and `POST /reload`.
//!
//! # Layout
//!
//! - [`config`]: `sidecar.yaml`, environment overrides, validation.
//! - `runtime.rs`: the snapshot a config builds, swapped whole on reload.
//! - `inbound.rs`, `outbound.rs`: the two request handlers.
//! - `inbound_tls.rs`, `authz.rs`, `mesh.rs`: mutual TLS on the inbound port,
//!   authorization by caller identity, the workload identity.
//! - `destination.rs`, `discovery.rs`: one destination's stack and endpoints.
//! - `transparent/`: `SO_ORIGINAL_DST`, protocol detection, opaque TCP.
//! - [`iptables`]: the rules `sidecar init-iptables` writes.
//! - [`metrics`]: Prometheus families; `state.rs`: `/state` and `/config`;
//!   `dashboard.rs`: what `/dashboard` shows.

mod authz;
pub mod config;
mod dashboard;
mod destination;
mod discovery;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
mod inbound;
mod inbound_tls;
pub mod iptables;
mod mesh;
pub mod metrics;
mod outbound;
mod problems;
mod runtime;
mod state;
mod transparent;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use proxy_core::admin::dashboard::{Dashboard, DashboardSettings};
use proxy_core::admin::{AdminState, serve_admin};
use proxy_core::config::ConfigErrors;
use proxy_core::identity::CredentialsWatch;
use proxy_core::reload::{ReloadMetrics, Reloader};
use proxy_core::server::{ConnLimits, ServeOptions, serve, serve_with};
use proxy_core::shutdown::{self, Shutdown};
use proxy_core::telemetry::{Telemetry, TelemetryError};
use tokio::net::TcpListener;

pub use config::SidecarConfig;
pub use metrics::SidecarMetrics;

use crate::inbound::Inbound;
use crate::inbound_tls::InboundDispatch;
use crate::mesh::Mesh;
use crate::outbound::Outbound;
use crate::runtime::Runtime;

/// How often the app is probed for `/readyz`.
const APP_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// An environment lookup (`|k| std::env::var(k).ok()` in `main`, a map in tests).
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot listen on {what} address {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start telemetry")]
    Telemetry(#[from] TelemetryError),
    #[error("cannot start the workload identity: {0}")]
    Identity(#[from] identity::IdentityError),
}

/// A sidecar whose listeners are bound, ready to [`serve`](Sidecar::serve).
pub struct Sidecar {
    inbound: TcpListener,
    outbound: TcpListener,
    admin: TcpListener,
    runtime: Arc<ArcSwap<Runtime>>,
    reloader: Option<Arc<Reloader<Runtime>>>,
    registry: Arc<Registry>,
    telemetry: Telemetry,
    drain: Duration,
    /// `limits:` of the inbound and outbound listeners.
    limits: ConnLimits,
    transparent: bool,
    mesh: Mesh,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, SidecarError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SidecarError::Bind { what, addr, source })
}

impl Sidecar {
    /// Binds the listeners of `config` (no hot reload: there is no file).
    pub async fn bind(config: SidecarConfig) -> Result<Sidecar, SidecarError> {
        Self::bind_with_credentials(config, None).await
    }

    /// [`bind`](Self::bind) for a sidecar with a workload identity: every
    /// mutual TLS handshake, inbound and outbound, uses the latest
    /// credentials on `credentials` (so rotations apply to new connections).
    /// With `Some`, destinations default to mutual TLS and inbound
    /// authorization to `all-authenticated`; see `docs/identity.md#mtls-and-authorization`.
    pub async fn bind_with_credentials(
        config: SidecarConfig,
        credentials: Option<CredentialsWatch>,
    ) -> Result<Sidecar, SidecarError> {
        Self::bind_config(config, credentials, Registry::default()).await
    }

    /// [`bind`](Self::bind), first starting the credentials source of the
    /// config's `identity:` section (when it has one), which runs until
    /// `shutdown`; its metrics join the sidecar's.
    pub async fn bind_with_identity(
        config: SidecarConfig,
        shutdown: Shutdown,
    ) -> Result<Sidecar, SidecarError> {
        let mut registry = Registry::default();
        let credentials = start_identity(&config, &mut registry, shutdown).await?;
        Self::bind_config(config, credentials, registry).await
    }

    async fn bind_config(
        config: SidecarConfig,
        credentials: Option<CredentialsWatch>,
        registry: Registry,
    ) -> Result<Sidecar, SidecarError> {
        let mesh = Mesh::new(credentials);
        let metrics = SidecarMetrics::default();
        let telemetry = Telemetry::init(&config.telemetry)?;
        let runtime = Runtime::build(config, None, &metrics, &telemetry, &mesh)?;
        Self::bind_runtime(
            Arc::new(ArcSwap::from_pointee(runtime)),
            None,
            metrics,
            None,
            telemetry,
            mesh,
            registry,
        )
        .await
    }

    /// Loads `path` (with `env` overrides), binds its listeners, and reloads the
    /// file on change, on SIGHUP and on `POST /reload`.
    pub async fn bind_file(path: &Path, env: Env) -> Result<Sidecar, SidecarError> {
        Self::bind_file_with_credentials(path, env, None).await
    }

    /// [`bind_file`](Self::bind_file) with a workload identity (see
    /// [`bind_with_credentials`](Self::bind_with_credentials)).
    pub async fn bind_file_with_credentials(
        path: &Path,
        env: Env,
        credentials: Option<CredentialsWatch>,
    ) -> Result<Sidecar, SidecarError> {
        Self::bind_file_inner(path, env, credentials, Registry::default()).await
    }

    /// [`bind_file`](Self::bind_file), first starting the credentials
    /// source of the file's `identity:` section (see
    /// [`bind_with_identity`](Self::bind_with_identity)).
    pub async fn bind_file_with_identity(
        path: &Path,
        env: Env,
        shutdown: Shutdown,
    ) -> Result<Sidecar, SidecarError> {
        let first = SidecarConfig::load(path, &*env)?;
        let mut registry = Registry::default();
        let credentials = start_identity(&first, &mut registry, shutdown).await?;
        Self::bind_file_inner(path, env, credentials, registry).await
    }

    async fn bind_file_inner(
        path: &Path,
        env: Env,
        credentials: Option<CredentialsWatch>,
        registry: Registry,
    ) -> Result<Sidecar, SidecarError> {
        let mesh = Mesh::new(credentials);
        let first = SidecarConfig::load(path, &*env)?;
        let telemetry = Telemetry::init(&first.telemetry)?;
        let metrics = SidecarMetrics::default();
        let reload_metrics = ReloadMetrics::default();
        let (m, t) = (metrics.clone(), telemetry.clone());
        let running = first.effective.clone();
        let reload_mesh = mesh.clone();
        let reloader = Reloader::new(
            path,
            move |p: &Path, prev: Option<&Runtime>| {
                let cfg = SidecarConfig::load(p, &*env)?;
                Runtime::build(cfg, prev, &m, &t, &reload_mesh)
            },
            reload_metrics.clone(),
        )?
        .with_restart_check(move |rt: &Runtime| {
            config::restart_required(&running, &rt.config.effective)
        });
        let reloader = Arc::new(reloader);
        let runtime = reloader.current().clone();
        Self::bind_runtime(
            runtime,
            Some(reloader),
            metrics,
            Some(reload_metrics),
            telemetry,
            mesh,
            registry,
        )
        .await
    }

    async fn bind_runtime(
        runtime: Arc<ArcSwap<Runtime>>,
        reloader: Option<Arc<Reloader<Runtime>>>,
        metrics: SidecarMetrics,
        reload_metrics: Option<ReloadMetrics>,
        telemetry: Telemetry,
        mesh: Mesh,
        mut registry: Registry,
    ) -> Result<Sidecar, SidecarError> {
        let (inbound_addr, outbound_addr, admin_addr, drain, limits, transparent) = {
            let rt = runtime.load();
            let c = &rt.config;
            (
                c.inbound.address,
                c.outbound.address,
                c.admin,
                c.drain,
                c.limits.clone(),
                c.outbound.transparent,
            )
        };
        metrics.register(&mut registry);
        if let Some(rm) = &reload_metrics {
            rm.register(&mut registry);
        }
        telemetry.register_metrics(&mut registry);
        Ok(Sidecar {
            inbound: bind("inbound", inbound_addr).await?,
            outbound: bind("outbound", outbound_addr).await?,
            admin: bind("admin", admin_addr).await?,
            runtime,
            reloader,
            registry: Arc::new(registry),
            telemetry,
            drain,
            limits,
            transparent,
            mesh,
        })
    }

    /// The bound inbound address (useful with port 0).
    pub fn inbound_addr(&self) -> SocketAddr {
        self.inbound
            .local_addr()
            .unwrap_or_else(|_| self.runtime.load().config.inbound.address)
    }

    /// The bound outbound address.
    pub fn outbound_addr(&self) -> SocketAddr {
        self.outbound
            .local_addr()
            .unwrap_or_else(|_| self.runtime.load().config.outbound.address)
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .unwrap_or_else(|_| self.runtime.load().config.admin)
    }

    /// Serves until `shutdown`: then `/readyz` turns 503, the listeners stop
    /// accepting, in-flight requests finish (up to `shutdown.drain`), and the
    /// admin listener closes last.
    pub async fn serve(self, shutdown: Shutdown) -> Result<(), SidecarError> {
        let runtime = self.runtime.clone();
        // What transparent mode must never forward to: ourselves.
        let own_addrs = [self.inbound_addr(), self.outbound_addr(), self.admin_addr()];
        let json_rt = runtime.clone();
        let mut admin = AdminState::new(
            self.registry.clone(),
            Arc::new(move || state::config_json(&json_rt)),
        );
        let state_rt = runtime.clone();
        admin
            .extra
            .insert("/state", Arc::new(move || state::state_json(&state_rt)));
        if let Some(r) = &self.reloader {
            let hook = r.clone();
            admin.reload = Some(Arc::new(move || {
                hook.reload_report().map_err(|e| e.to_string())
            }));
            r.spawn_watchers(shutdown.clone());
        }
        admin.access = runtime.load().config.admin_access.clone();
        admin.dashboard = Some(Dashboard::new(
            Arc::new(dashboard::SidecarDashboard::new(
                runtime.clone(),
                self.registry.clone(),
                self.mesh.clone(),
            )),
            DashboardSettings::default(),
        ));
        let ready = admin.ready.clone();
        let (admin_trigger, admin_shutdown) = shutdown::channel();
        let admin_task = tokio::spawn(serve_admin(self.admin, admin, admin_shutdown));

        let stop_ready = ready.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            stop.wait().await;
            stop_ready.store(false, Ordering::Relaxed);
        });
        let app_watch = tokio::spawn(inbound::watch_app(
            runtime.clone(),
            ready,
            APP_PROBE_INTERVAL,
            shutdown.clone(),
        ));

        let opts = ServeOptions {
            limits: self.limits.clone(),
            drain: self.drain,
            ..ServeOptions::default()
        };
        let inbound = serve_with(
            self.inbound,
            opts.clone(),
            InboundDispatch::new(
                Inbound {
                    runtime: runtime.clone(),
                    telemetry: self.telemetry.clone(),
                },
                &self.mesh,
            ),
            shutdown.clone(),
        );
        let outbound = async {
            if self.transparent {
                let own = transparent::OwnAddrs::new(own_addrs);
                let step = transparent::Transparent {
                    runtime: runtime.clone(),
                    own: Arc::new(own),
                };
                serve_with(self.outbound, opts.clone(), step, shutdown.clone()).await;
            } else {
                let handler = Outbound {
                    runtime: runtime.clone(),
                    original_dst: None,
                };
                serve(self.outbound, opts.clone(), handler, shutdown.clone()).await;
            }
        };
        tracing::info!("sidecar serving");
        tokio::join!(inbound, outbound);
        let _ = app_watch.await;
        admin_trigger.trigger();
        let _ = admin_task.await;
        self.telemetry.shutdown(Duration::from_secs(5)).await;
        tracing::info!("sidecar stopped");
        Ok(())
    }
}

/// Runs a sidecar for `config` until `shutdown` (no hot reload).
pub async fn run(config: SidecarConfig, shutdown: Shutdown) -> Result<(), SidecarError> {
    Sidecar::bind(config).await?.serve(shutdown).await
}

/// Runs a sidecar from the file at `path` with hot reload until `shutdown`,
/// with the workload identity its `identity:` section names.
pub async fn run_file(path: &Path, env: Env, shutdown: Shutdown) -> Result<(), SidecarError> {
    Sidecar::bind_file_with_identity(path, env, shutdown.clone())
        .await?
        .serve(shutdown)
        .await
}

/// Starts the credentials source of `config.identity`, if any.
async fn start_identity(
    config: &SidecarConfig,
    registry: &mut Registry,
    shutdown: Shutdown,
) -> Result<Option<CredentialsWatch>, SidecarError> {
    match &config.identity {
        Some(settings) => Ok(Some(identity::start(settings, registry, shutdown).await?)),
        None => Ok(None),
    }
}
