//! The order service's settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use service_kit::env::{Env, EnvError};
use service_kit::telemetry::ServiceTelemetry;

use crate::catalog_api::CatalogApi;
use crate::saga::SagaStep;

/// Order settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the binary listens (`LISTEN_ADDR` or `PORT`, default `0.0.0.0:8082`).
    pub listen: SocketAddr,
    /// `DATABASE_URL`; `None` means the SQLite file `<data_dir>/order.db`.
    pub database_url: Option<String>,
    /// `WEIR_DATA_DIR`, default `./data`.
    pub data_dir: PathBuf,
    /// Base URL of the catalog (`CATALOG_URL`, default `http://catalog`: the
    /// logical name the sidecar resolves).
    pub catalog_url: String,
    /// Which of the catalog's APIs the saga calls (`CATALOG_API`: `grpc`,
    /// the default, or `rest`); both go through the sidecar the same way.
    pub catalog_api: CatalogApi,
    /// Base URL of the payment service (`PAYMENT_URL`, default `http://payment`).
    pub payment_url: String,
    /// The sidecar's outbound proxy (`WEIR_OUTBOUND_ADDR=127.0.0.1:4240` or
    /// `HTTP_PROXY=http://127.0.0.1:4240`); `None` dials the URLs directly.
    pub outbound_proxy: Option<SocketAddr>,
    /// Timeout of one call to another service (`ORDER_CALL_TIMEOUT`, default `5s`).
    pub call_timeout: Duration,
    /// Tries per saga step before the order is left pending for recovery
    /// (`ORDER_CALL_ATTEMPTS`, default 4).
    pub call_attempts: u32,
    /// First retry delay, doubled per try with jitter (`ORDER_RETRY_BACKOFF`, default `100ms`).
    pub retry_backoff: Duration,
    /// How often pending orders are re-driven (`ORDER_RECOVERY_INTERVAL`, default `30s`).
    pub recovery_interval: Duration,
    /// Wait before the second try of a refund that failed during
    /// compensation, doubled per failed try with jitter
    /// (`ORDER_REFUND_BACKOFF`, default `1s`). Refunds are retried until the
    /// payment service confirms them: the customer's money is never kept.
    pub refund_backoff: Duration,
    /// The longest wait between two refund tries (`ORDER_REFUND_BACKOFF_MAX`,
    /// default `5m`).
    pub refund_backoff_max: Duration,
    /// An order still unable to reserve its stock this long after it was
    /// placed is failed (`ORDER_RESERVE_DEADLINE`, default `10m`). Only the
    /// reserve step gives up: nothing has been charged yet, and any
    /// reservation a lost call made expires in the catalog.
    pub reserve_deadline: Duration,
    /// RabbitMQ for the outbox relay (`AMQP_URL`); `None`: no RabbitMQ relay.
    pub amqp_url: Option<String>,
    /// The topic exchange events go to on RabbitMQ (`AMQP_EXCHANGE`, default `weir.orders`).
    pub amqp_exchange: String,
    /// Kafka bootstrap brokers for the outbox relay (`KAFKA_BROKERS=host:port,…`);
    /// `None`: no Kafka relay. With neither bus the events stay in the outbox.
    pub kafka_brokers: Option<String>,
    /// The topic events go to on Kafka (`KAFKA_TOPIC`, default `weir.orders`).
    pub kafka_topic: String,
    /// How long librdkafka tries to deliver one record before the relay backs
    /// off and starts over (`KAFKA_MESSAGE_TIMEOUT`, default `30s`).
    pub kafka_message_timeout: Duration,
    /// How often the relay looks for unpublished events when not woken (`OUTBOX_POLL_INTERVAL`, default `1s`).
    pub outbox_poll_interval: Duration,
    /// Test hook: stop every saga right after this step is recorded, leaving
    /// the state a crash at that point would leave. Not read from the environment.
    pub crash_after_step: Option<SagaStep>,
    /// Tracing: spans exported as `order` when `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// is set (see `service_kit::telemetry::init`); off in [`Config::new`].
    pub telemetry: ServiceTelemetry,
}

impl Config {
    /// Defaults with the SQLite file in `data_dir`, calling peers by logical name.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8082)),
            database_url: None,
            data_dir: data_dir.into(),
            catalog_url: "http://catalog".into(),
            catalog_api: CatalogApi::default(),
            payment_url: "http://payment".into(),
            outbound_proxy: None,
            call_timeout: Duration::from_secs(5),
            call_attempts: 4,
            retry_backoff: Duration::from_millis(100),
            recovery_interval: Duration::from_secs(30),
            refund_backoff: Duration::from_secs(1),
            refund_backoff_max: Duration::from_secs(5 * 60),
            reserve_deadline: Duration::from_secs(10 * 60),
            amqp_url: None,
            amqp_exchange: crate::outbox::EXCHANGE.into(),
            kafka_brokers: None,
            kafka_topic: crate::outbox::EXCHANGE.into(),
            kafka_message_timeout: Duration::from_secs(30),
            outbox_poll_interval: Duration::from_secs(1),
            crash_after_step: None,
            telemetry: service_kit::telemetry::disabled("order"),
        }
    }

    /// Settings from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(&Env::process())
    }

    /// Settings from any variable source.
    pub fn from_vars(env: &Env<'_>) -> Result<Self, EnvError> {
        let mut config = Self::new(env.data_dir());
        config.listen = env.listen_addr(8082)?;
        config.database_url = env.string("DATABASE_URL");
        if let Some(url) = env.string("CATALOG_URL") {
            config.catalog_url = url;
        }
        if let Some(api) = env.string("CATALOG_API") {
            config.catalog_api = CatalogApi::parse(&api).ok_or_else(|| EnvError {
                name: "CATALOG_API".into(),
                value: api.clone(),
                reason: "must be grpc or rest".into(),
            })?;
        }
        if let Some(url) = env.string("PAYMENT_URL") {
            config.payment_url = url;
        }
        config.outbound_proxy = env.outbound_proxy()?;
        if let Some(timeout) = env.duration("ORDER_CALL_TIMEOUT")? {
            config.call_timeout = timeout;
        }
        if let Some(attempts) = env.parse::<u32>("ORDER_CALL_ATTEMPTS")? {
            config.call_attempts = attempts.max(1);
        }
        if let Some(backoff) = env.duration("ORDER_RETRY_BACKOFF")? {
            config.retry_backoff = backoff;
        }
        if let Some(interval) = env.duration("ORDER_RECOVERY_INTERVAL")? {
            config.recovery_interval = interval;
        }
        if let Some(backoff) = env.duration("ORDER_REFUND_BACKOFF")? {
            config.refund_backoff = backoff;
        }
        if let Some(max) = env.duration("ORDER_REFUND_BACKOFF_MAX")? {
            config.refund_backoff_max = max;
        }
        if let Some(deadline) = env.duration("ORDER_RESERVE_DEADLINE")? {
            config.reserve_deadline = deadline;
        }
        config.amqp_url = env.string("AMQP_URL");
        if let Some(exchange) = env.string("AMQP_EXCHANGE") {
            config.amqp_exchange = exchange;
        }
        config.kafka_brokers = env.string("KAFKA_BROKERS");
        if let Some(topic) = env.string("KAFKA_TOPIC") {
            config.kafka_topic = topic;
        }
        if let Some(timeout) = env.duration("KAFKA_MESSAGE_TIMEOUT")? {
            config.kafka_message_timeout = timeout;
        }
        if let Some(interval) = env.duration("OUTBOX_POLL_INTERVAL")? {
            config.outbox_poll_interval = interval;
        }
        config.telemetry = service_kit::telemetry::init("order", &|name| env.string(name))?;
        Ok(config)
    }

    /// Tracing from `env` (the `OTEL_*` variables), exporting as `order`:
    /// what the demo uses to give each service in its process its own name.
    pub fn with_telemetry_from(
        mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, EnvError> {
        self.telemetry = service_kit::telemetry::init("order", env)?;
        Ok(self)
    }

    pub(crate) fn catalog(&self, path: &str) -> String {
        format!("{}{path}", self.catalog_url.trim_end_matches('/'))
    }

    pub(crate) fn payment(&self, path: &str) -> String {
        format!("{}{path}", self.payment_url.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_the_environment_and_names_bad_values() {
        let vars: HashMap<&str, &str> = HashMap::from([
            ("WEIR_DATA_DIR", "/var/lib/weir"),
            ("HTTP_PROXY", "http://127.0.0.1:4240"),
            ("ORDER_CALL_TIMEOUT", "750ms"),
            ("ORDER_REFUND_BACKOFF_MAX", "1m"),
            ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            ("KAFKA_BROKERS", "127.0.0.1:9092,127.0.0.1:9093"),
            ("KAFKA_MESSAGE_TIMEOUT", "5s"),
        ]);
        let env = Env::from_fn(|k| vars.get(k).map(|v| (*v).to_owned()));
        let config = Config::from_vars(&env).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/weir"));
        assert_eq!(
            config.outbound_proxy,
            Some("127.0.0.1:4240".parse().unwrap())
        );
        assert_eq!(config.call_timeout, Duration::from_millis(750));
        assert_eq!(config.refund_backoff, Duration::from_secs(1));
        assert_eq!(config.refund_backoff_max, Duration::from_secs(60));
        assert_eq!(config.catalog_url, "http://catalog");
        assert_eq!(config.listen, "0.0.0.0:8082".parse().unwrap());
        assert!(config.amqp_url.is_some());
        assert_eq!(config.amqp_exchange, "weir.orders");
        assert_eq!(
            config.kafka_brokers.as_deref(),
            Some("127.0.0.1:9092,127.0.0.1:9093")
        );
        assert_eq!(config.kafka_topic, "weir.orders");
        assert_eq!(config.kafka_message_timeout, Duration::from_secs(5));
        assert_eq!(config.crash_after_step, None);
        assert!(
            !config.telemetry.telemetry().is_enabled(),
            "no endpoint: off"
        );

        assert_eq!(config.catalog_api, CatalogApi::Grpc);
        let rest = Env::from_fn(|k| (k == "CATALOG_API").then(|| "rest".to_owned()));
        assert_eq!(
            Config::from_vars(&rest).unwrap().catalog_api,
            CatalogApi::Rest
        );
        let soap = Env::from_fn(|k| (k == "CATALOG_API").then(|| "soap".to_owned()));
        assert_eq!(Config::from_vars(&soap).unwrap_err().name, "CATALOG_API");

        let bad = Env::from_fn(|k| (k == "ORDER_RECOVERY_INTERVAL").then(|| "soon".to_owned()));
        assert_eq!(
            Config::from_vars(&bad).unwrap_err().name,
            "ORDER_RECOVERY_INTERVAL"
        );
    }

    #[tokio::test]
    async fn an_otlp_endpoint_turns_tracing_on_as_order() {
        let env = Env::from_fn(|k| {
            (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://127.0.0.1:4317".to_owned())
        });
        let config = Config::from_vars(&env).unwrap();
        assert!(config.telemetry.telemetry().is_enabled());
        assert_eq!(config.telemetry.telemetry().service_name(), "order");

        let bad = Env::from_fn(|k| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4317".to_owned()),
            "OTEL_RESOURCE_ATTRIBUTES" => Some("novalue".to_owned()),
            _ => None,
        });
        assert_eq!(
            Config::from_vars(&bad).unwrap_err().name,
            "OTEL_RESOURCE_ATTRIBUTES"
        );
    }
}
