//! Consuming order events from RabbitMQ.
//!
//! The catalog's own durable queue (`CATALOG_AMQP_QUEUE`) is bound to the
//! order exchange for every `order.*` routing key, so events published while
//! the catalog is down wait there. Deliveries are acknowledged manually,
//! one by one, after their transaction committed; a prefetch window keeps a
//! few in flight. Whatever is unacknowledged when the connection ends (a
//! crash, a database failure) RabbitMQ delivers again.

use std::sync::Arc;

use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use opentelemetry::KeyValue;
use service_kit::messaging::TraceHeaders;

use super::{Received, Sink, backoff};

/// Unacknowledged deliveries the broker sends ahead.
const PREFETCH: u16 = 32;

/// Where to consume from.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) exchange: String,
    pub(crate) queue: String,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Consumes until aborted, reconnecting with backoff after failures.
pub(crate) async fn run(settings: Settings, sink: Arc<Sink>) {
    let mut failures = 0u32;
    loop {
        let error = session(&settings, &sink, &mut failures).await;
        failures = failures.saturating_add(1);
        let wait = backoff(failures);
        tracing::warn!(bus = "rabbitmq", error = %service_kit::server::error_chain(&*error),
            retry_in = ?wait, "order event consumer interrupted, reconnecting");
        tokio::time::sleep(wait).await;
    }
}

async fn session(settings: &Settings, sink: &Sink, failures: &mut u32) -> Error {
    match consume(settings, sink, failures).await {
        Ok(()) => "the broker ended the consumer".into(),
        Err(error) => error,
    }
}

async fn consume(settings: &Settings, sink: &Sink, failures: &mut u32) -> Result<(), Error> {
    let connection = Connection::connect(&settings.url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .exchange_declare(
            settings.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            settings.queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            settings.queue.as_str().into(),
            settings.exchange.as_str().into(),
            "order.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            settings.queue.as_str().into(),
            "catalog".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(bus = "rabbitmq", queue = %settings.queue, "order event consumer connected");
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery?;
        sink.handle(received(settings, &delivery)).await?;
        if sink.crashed() {
            // As if the process died here: nothing acknowledged, the
            // connection dropped, RabbitMQ delivers the rest again.
            tracing::warn!(bus = "rabbitmq", "crash injected before acknowledging");
            let _ = connection.close(320, "crash injected".into()).await;
            return std::future::pending().await;
        }
        delivery.acker.ack(BasicAckOptions::default()).await?;
        *failures = 0;
    }
    Ok(())
}

/// The delivery as the sink reads it: trace context and event id from the headers.
fn received<'a>(settings: &'a Settings, delivery: &'a Delivery) -> Received<'a> {
    let headers: Vec<(&str, &[u8])> = delivery
        .properties
        .headers()
        .as_ref()
        .map(|table| {
            table
                .inner()
                .iter()
                .filter_map(|(name, value)| match value {
                    AMQPValue::LongString(s) => Some((name.as_str(), s.as_bytes())),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let header_event_id = headers
        .iter()
        .find(|(name, _)| *name == "event_id")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .or_else(|| {
            delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.as_str().to_owned())
        });
    Received {
        bus: "rabbitmq",
        destination: &settings.exchange,
        position: format!(
            "{}/{}#{}",
            settings.queue, delivery.routing_key, delivery.delivery_tag
        ),
        payload: &delivery.data,
        trace: TraceHeaders::from_pairs(headers),
        header_event_id,
        attributes: vec![
            KeyValue::new(
                "messaging.rabbitmq.destination.routing_key",
                delivery.routing_key.as_str().to_owned(),
            ),
            KeyValue::new("messaging.consumer.group.name", settings.queue.clone()),
        ],
    }
}
