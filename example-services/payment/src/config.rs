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
    /// Whether the fault knobs exist (`PAYMENT_FAULTS=enabled`, default off).
    /// Off, `/admin/faults` answers `404` and [`Config::faults`] is ignored.
    pub faults_enabled: bool,
    /// Fault injection at start-up (`PAYMENT_FAILURE_RATE`, `PAYMENT_LATENCY_MS`,
    /// `PAYMENT_DECLINE_OVER_MINOR`, `PAYMENT_REFUND_FAILURE_RATE`); changed at
    /// run time with `PUT /admin/faults`.
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
            faults_enabled: false,
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
        config.faults_enabled = match env.string("PAYMENT_FAULTS").as_deref() {
            None | Some("disabled") => false,
            Some("enabled") => true,
            Some(other) => {
                return Err(EnvError {
                    name: "PAYMENT_FAULTS".into(),
                    value: other.into(),
                    reason: "expected `enabled` or `disabled`".into(),
                });
            }
        };
        if let Some(rate) = rate(env, "PAYMENT_FAILURE_RATE")? {
            config.faults.failure_rate = rate;
        }
        if let Some(rate) = rate(env, "PAYMENT_REFUND_FAILURE_RATE")? {
            config.faults.refund_failure_rate = rate;
        }
        if let Some(latency) = env.parse("PAYMENT_LATENCY_MS")? {
            config.faults.latency_ms = latency;
        }
        config.faults.decline_over_minor = env.parse("PAYMENT_DECLINE_OVER_MINOR")?;
        if !config.faults_enabled && config.faults != FaultSettings::default() {
            // A knob set while the knobs are off would silently do nothing.
            return Err(EnvError {
                name: "PAYMENT_FAULTS".into(),
                value: "disabled".into(),
                reason: "PAYMENT_FAILURE_RATE, PAYMENT_REFUND_FAILURE_RATE, PAYMENT_LATENCY_MS \
                         and PAYMENT_DECLINE_OVER_MINOR need PAYMENT_FAULTS=enabled"
                    .into(),
            });
        }
        config.telemetry = service_kit::telemetry::init("payment", &|name| env.string(name))?;
        Ok(config)
    }

    /// The settings with the fault knobs on (what the demo runs).
    pub fn with_faults_enabled(mut self) -> Self {
        self.faults_enabled = true;
        self
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

/// A rate variable, 0.0-1.0.
fn rate(env: &Env<'_>, name: &str) -> Result<Option<f64>, EnvError> {
    let Some(rate) = env.parse::<f64>(name)? else {
        return Ok(None);
    };
    if !(0.0..=1.0).contains(&rate) {
        return Err(EnvError {
            name: name.into(),
            value: rate.to_string(),
            reason: "must be between 0.0 and 1.0".into(),
        });
    }
    Ok(Some(rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> Result<Config, EnvError> {
        let env = Env::from_fn(|k| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        });
        Config::from_vars(&env)
    }

    #[test]
    fn faults_are_off_unless_enabled_and_knobs_need_them_on() {
        assert!(!vars(&[]).unwrap().faults_enabled);
        let on = vars(&[
            ("PAYMENT_FAULTS", "enabled"),
            ("PAYMENT_REFUND_FAILURE_RATE", "0.5"),
        ])
        .unwrap();
        assert!(on.faults_enabled);
        assert_eq!(on.faults.refund_failure_rate, 0.5);
        assert_eq!(
            vars(&[("PAYMENT_FAILURE_RATE", "1")]).unwrap_err().name,
            "PAYMENT_FAULTS"
        );
        assert_eq!(
            vars(&[("PAYMENT_FAULTS", "yes")]).unwrap_err().name,
            "PAYMENT_FAULTS"
        );
        assert_eq!(
            vars(&[("PAYMENT_FAULTS", "enabled"), ("PAYMENT_FAILURE_RATE", "2")])
                .unwrap_err()
                .name,
            "PAYMENT_FAILURE_RATE"
        );
    }
}
