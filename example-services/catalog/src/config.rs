//! The catalog's settings: built in code by the demo and tests, from the
//! environment by the binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use service_kit::env::{Env, EnvError};
use service_kit::telemetry::ServiceTelemetry;

/// Catalog settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the binary listens (`LISTEN_ADDR` or `PORT`, default `0.0.0.0:8081`);
    /// [`crate::run`] serves whatever listener it is given.
    pub listen: SocketAddr,
    /// `DATABASE_URL`; `None` means the SQLite file `<data_dir>/catalog.db`.
    pub database_url: Option<String>,
    /// `WEIR_DATA_DIR`, default `./data`.
    pub data_dir: PathBuf,
    /// How long an uncommitted reservation holds stock (`RESERVATION_TTL`, default `15m`).
    pub reservation_ttl: Duration,
    /// How often expired reservations are swept (`RESERVATION_SWEEP_INTERVAL`, default `5s`).
    pub sweep_interval: Duration,
    /// Load the seed products into an empty database (`CATALOG_SEED`, default `true`).
    pub seed: bool,
    /// When set (`CATALOG_ADMIN_TOKEN`), admin calls need header
    /// `x-weir-admin-token: <token>`; when unset, `x-weir-admin: true` suffices.
    pub admin_token: Option<String>,
    /// Tracing: spans exported as `catalog` when `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// is set (see `service_kit::telemetry::init`); off in [`Config::new`].
    pub telemetry: ServiceTelemetry,
}

impl Config {
    /// Defaults with the SQLite file in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8081)),
            database_url: None,
            data_dir: data_dir.into(),
            reservation_ttl: Duration::from_secs(15 * 60),
            sweep_interval: Duration::from_secs(5),
            seed: true,
            admin_token: None,
            telemetry: service_kit::telemetry::disabled("catalog"),
        }
    }

    /// Settings from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(&Env::process())
    }

    /// Settings from any variable source.
    pub fn from_vars(env: &Env<'_>) -> Result<Self, EnvError> {
        let mut config = Self::new(env.data_dir());
        config.listen = env.listen_addr(8081)?;
        config.database_url = env.string("DATABASE_URL");
        if let Some(ttl) = env.duration("RESERVATION_TTL")? {
            config.reservation_ttl = ttl;
        }
        if let Some(interval) = env.duration("RESERVATION_SWEEP_INTERVAL")? {
            config.sweep_interval = interval;
        }
        if let Some(seed) = env.boolean("CATALOG_SEED")? {
            config.seed = seed;
        }
        config.admin_token = env.string("CATALOG_ADMIN_TOKEN");
        config.telemetry = service_kit::telemetry::init("catalog", &|name| env.string(name))?;
        Ok(config)
    }

    /// Tracing from `env` (the `OTEL_*` variables), exporting as `catalog`:
    /// what the demo uses to give each service in its process its own name.
    pub fn with_telemetry_from(
        mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, EnvError> {
        self.telemetry = service_kit::telemetry::init("catalog", env)?;
        Ok(self)
    }
}
