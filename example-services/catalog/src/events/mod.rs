//! The catalog's consumers of order events, from RabbitMQ, Kafka or both,
//! and the read model they keep: units sold per product (`product_sales`),
//! shown as `units_sold` in the v2 product representation.
//!
//! Each message is handled the same way whatever bus brought it: its CONSUMER
//! span `process {destination}` continues the trace the message's headers
//! carry (the order's), the event and its effect are recorded in one
//! transaction keyed by event id ([`apply`]), and only then is the message
//! acknowledged (RabbitMQ) or its offset committed (Kafka). A message that
//! cannot be read is set aside in `dead_letters`, counted and logged, and
//! acknowledged, so it does not stall the ones behind it. A database failure
//! acknowledges nothing: the consumer reconnects and the broker delivers
//! again.
//!
//! # Layout
//!
//! - `apply`: the event body, its effect, idempotence, setting aside;
//! - `amqp`, `kafka`: the two consumers;
//! - [`metrics`]: `weir_catalog_events_total` at `GET /metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use service_kit::Db;
use service_kit::messaging::{MessageSpan, TraceHeaders, consumer_span};
use service_kit::server::TaskSet;
use service_kit::telemetry::ServiceTelemetry;

use crate::config::Config;

mod amqp;
mod apply;
mod kafka;
pub mod metrics;

pub use metrics::EventStats;

/// A message as a consumer received it, before it is read.
#[derive(Debug)]
pub(crate) struct Received<'a> {
    /// `rabbitmq` or `kafka`.
    pub(crate) bus: &'static str,
    /// The exchange or topic.
    pub(crate) destination: &'a str,
    /// Where on the bus (`partition/offset`, delivery tag), for dead letters and logs.
    pub(crate) position: String,
    pub(crate) payload: &'a [u8],
    /// The trace context from the message's headers.
    pub(crate) trace: TraceHeaders,
    /// The `event_id` header, naming the span of a body that cannot be read.
    pub(crate) header_event_id: Option<String>,
    /// The bus's own span attributes (key, partition, consumer group…).
    pub(crate) attributes: Vec<KeyValue>,
}

/// What every consumer hands its messages to.
#[derive(Debug)]
pub(crate) struct Sink {
    db: Db,
    telemetry: ServiceTelemetry,
    stats: Arc<EventStats>,
    handled: AtomicU64,
    crash_after: Option<u64>,
}

impl Sink {
    /// Handles one message; `Ok` means it may be acknowledged, with the
    /// outcome (`applied`, `duplicate`, `set_aside`).
    pub(crate) async fn handle(&self, message: Received<'_>) -> Result<&'static str, sqlx::Error> {
        let parsed = apply::OrderEvent::parse(message.payload);
        let message_id = match &parsed {
            Ok(event) => event.event_id.clone(),
            Err(_) => message.header_event_id.clone().unwrap_or_default(),
        };
        let mut attributes = message.attributes;
        if let Ok(event) = &parsed {
            attributes.push(KeyValue::new("weir.order.id", event.order_id.clone()));
        }
        let mut span = consumer_span(
            &self.telemetry,
            MessageSpan {
                system: message.bus,
                destination: message.destination,
                message_id: &message_id,
            },
            &message.trace,
            attributes,
        );
        let outcome = match parsed {
            Ok(event) => self
                .telemetry
                .in_span(&span, apply::apply(&self.db, message.bus, &event))
                .await
                .map(apply::Applied::label),
            Err(reason) => {
                tracing::warn!(bus = message.bus, position = %message.position, %reason,
                    "order event set aside: it cannot be read");
                apply::set_aside(
                    &self.db,
                    message.bus,
                    &message.position,
                    &reason,
                    message.payload,
                )
                .await
                .map(|()| "set_aside")
            }
        };
        match outcome {
            Ok(label) => {
                span.set(KeyValue::new("weir.event.outcome", label));
                self.stats.count(message.bus, label);
                self.handled.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => span.record_error("database"),
        }
        outcome
    }

    /// Test hook: true once the configured number of messages was handled,
    /// where the consumer stops as if the process died before acknowledging.
    pub(crate) fn crashed(&self) -> bool {
        self.crash_after
            .is_some_and(|n| self.handled.load(Ordering::Relaxed) >= n)
    }
}

/// The first wait after a consumer failed; doubled per failure, at most 10 s.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The wait after `failures` failures in a row, with jitter.
pub(crate) fn backoff(failures: u32) -> Duration {
    let exp = BACKOFF_FIRST.saturating_mul(1 << failures.saturating_sub(1).min(16));
    let cap = exp.min(BACKOFF_MAX);
    cap / 2 + cap.mul_f64(fastrand::f64() / 2.0)
}

/// Starts a consumer per configured bus.
pub(crate) fn spawn(config: &Config, db: &Db, stats: &Arc<EventStats>, background: &mut TaskSet) {
    let sink = Arc::new(Sink {
        db: db.clone(),
        telemetry: config.telemetry.clone(),
        stats: Arc::clone(stats),
        handled: AtomicU64::new(0),
        crash_after: config.crash_after_events,
    });
    if let Some(url) = &config.amqp_url {
        background.spawn(amqp::run(
            amqp::Settings {
                url: url.clone(),
                exchange: config.amqp_exchange.clone(),
                queue: config.amqp_queue.clone(),
            },
            Arc::clone(&sink),
        ));
    }
    if let Some(brokers) = &config.kafka_brokers {
        background.spawn(kafka::run(
            kafka::Settings {
                brokers: brokers.clone(),
                topic: config.kafka_topic.clone(),
                group: config.kafka_group.clone(),
            },
            sink,
        ));
    }
}
