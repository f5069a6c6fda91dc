//! The payment service's settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use service_kit::env::{Env, EnvError};
use service_kit::telemetry::ServiceTelemetry;

use crate::faults::FaultSettings;

/// Payment settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the binary listens (`LISTEN_ADDR` or `PORT`, default `0.0.0.0:8083`).
    pub listen: SocketAddr,
    /// `DATABASE_URL`; `None` means the SQLite file `<data_dir>/payment.db`.
    pub database_url: Option<String>,
    /// `WEIR_DATA_DIR`, default `./data`.
    pub data_dir: PathBuf,
    /// Fault injection at start-up (`PAYMENT_FAILURE_RATE`, `PAYMENT_LATENCY_MS`,
    /// `PAYMENT_DECLINE_OVER_MINOR`); changed at run time with `PUT /admin/faults`.
    pub faults: FaultSettings,
    /// Tracing: spans exported as `payment` when `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// is set (see `service_kit::telemetry::init`); off in [`Config::new`].
    pub telemetry: ServiceTelemetry,
}

impl Config {
    /// Defaults (no faults) with the SQLite file in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8083)),
            database_url: None,
            data_dir: data_dir.into(),
            faults: FaultSettings::default(),
            telemetry: service_kit::telemetry::disabled("payment"),
        }
    }

    /// Settings from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(&Env::process())
    }

    /// Settings from any variable source.
    pub fn from_vars(env: &Env<'_>) -> Result<Self, EnvError> {
        let mut config = Self::new(env.data_dir());
        config.listen = env.listen_addr(8083)?;
        config.database_url = env.string("DATABASE_URL");
        if let Some(rate) = env.parse::<f64>("PAYMENT_FAILURE_RATE")? {
            if !(0.0..=1.0).contains(&rate) {
                return Err(EnvError {
                    name: "PAYMENT_FAILURE_RATE".into(),
                    value: rate.to_string(),
                    reason: "must be between 0.0 and 1.0".into(),
                });
            }
            config.faults.failure_rate = rate;
        }
        if let Some(latency) = env.parse("PAYMENT_LATENCY_MS")? {
            config.faults.latency_ms = latency;
        }
        config.faults.decline_over_minor = env.parse("PAYMENT_DECLINE_OVER_MINOR")?;
        config.telemetry = service_kit::telemetry::init("payment", &|name| env.string(name))?;
        Ok(config)
    }

    /// Tracing from `env` (the `OTEL_*` variables), exporting as `payment`:
    /// what the demo uses to give each service in its process its own name.
    pub fn with_telemetry_from(
        mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, EnvError> {
        self.telemetry = service_kit::telemetry::init("payment", env)?;
        Ok(self)
    }
}
