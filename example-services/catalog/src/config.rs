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
    /// RabbitMQ to consume order events from (`AMQP_URL`); `None`: not from RabbitMQ.
    pub amqp_url: Option<String>,
    /// The exchange the order service publishes to (`AMQP_EXCHANGE`, default `weir.orders`).
    pub amqp_exchange: String,
    /// The catalog's durable queue bound to it (`CATALOG_AMQP_QUEUE`,
    /// default `catalog.order-events`).
    pub amqp_queue: String,
    /// Kafka bootstrap brokers to consume order events from
    /// (`KAFKA_BROKERS=host:port,…`); `None`: not from Kafka.
    pub kafka_brokers: Option<String>,
    /// The topic of order events (`KAFKA_TOPIC`, default `weir.orders`).
    pub kafka_topic: String,
    /// The consumer group (`CATALOG_KAFKA_GROUP`, default `catalog`).
    pub kafka_group: String,
    /// Test hook: the event consumers stop after handling this many
    /// messages, before acknowledging the last one, as a crash there would.
    /// Not read from the environment.
    pub crash_after_events: Option<u64>,
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
            amqp_url: None,
            amqp_exchange: "weir.orders".into(),
            amqp_queue: "catalog.order-events".into(),
            kafka_brokers: None,
            kafka_topic: "weir.orders".into(),
            kafka_group: "catalog".into(),
            crash_after_events: None,
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
        config.amqp_url = env.string("AMQP_URL");
        if let Some(exchange) = env.string("AMQP_EXCHANGE") {
            config.amqp_exchange = exchange;
        }
        if let Some(queue) = env.string("CATALOG_AMQP_QUEUE") {
            config.amqp_queue = queue;
        }
        config.kafka_brokers = env.string("KAFKA_BROKERS");
        if let Some(topic) = env.string("KAFKA_TOPIC") {
            config.kafka_topic = topic;
        }
        if let Some(group) = env.string("CATALOG_KAFKA_GROUP") {
            config.kafka_group = group;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_the_event_bus_settings() {
        let vars: HashMap<&str, &str> = HashMap::from([
            ("KAFKA_BROKERS", "127.0.0.1:9092"),
            ("CATALOG_KAFKA_GROUP", "catalog-eu"),
            ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        ]);
        let env = Env::from_fn(|k| vars.get(k).map(|v| (*v).to_owned()));
        let config = Config::from_vars(&env).unwrap();
        assert_eq!(config.kafka_brokers.as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(config.kafka_topic, "weir.orders");
        assert_eq!(config.kafka_group, "catalog-eu");
        assert_eq!(config.amqp_exchange, "weir.orders");
        assert_eq!(config.amqp_queue, "catalog.order-events");
        assert!(config.amqp_url.is_some());
        let none = Config::from_vars(&Env::from_fn(|_| None)).unwrap();
        assert!(none.kafka_brokers.is_none() && none.amqp_url.is_none());
    }
}
