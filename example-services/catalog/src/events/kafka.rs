//! Consuming order events from Kafka, in the consumer group `catalog`.
//!
//! Offsets are committed by hand, after a message's transaction committed
//! (`enable.auto.commit=false`), never before: a crash between the two
//! leaves the offset behind, the group's next member reads the message
//! again, and `processed_events` turns the second reading into a no-op.
//! Messages of one partition (one order's events, keyed by order id) are
//! handled in order, one at a time. A group new to the topic starts at the
//! earliest offset, so events published before the catalog first ran count.

use std::sync::Arc;

use opentelemetry::KeyValue;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers as _, Message as _};
use service_kit::messaging::TraceHeaders;

use super::{Received, Sink, backoff};

/// Where to consume from.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) brokers: String,
    pub(crate) topic: String,
    pub(crate) group: String,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The consumer settings: the group, manual commits, earliest start.
pub(crate) fn consumer_config(brokers: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // A member that vanished without leaving (a crash) is replaced after
        // 10 s rather than librdkafka's 45 s.
        .set("session.timeout.ms", "10000")
        .set("client.id", "weir-catalog");
    config
}

/// Consumes until aborted, starting over with backoff after failures.
pub(crate) async fn run(settings: Settings, sink: Arc<Sink>) {
    let mut failures = 0u32;
    loop {
        let error = match consume(&settings, &sink, &mut failures).await {
            Ok(()) => "consumer stopped".into(),
            Err(error) => error,
        };
        failures = failures.saturating_add(1);
        let wait = backoff(failures);
        tracing::warn!(bus = "kafka", error = %service_kit::server::error_chain(&*error),
            retry_in = ?wait, "order event consumer interrupted, starting over");
        tokio::time::sleep(wait).await;
    }
}

async fn consume(settings: &Settings, sink: &Sink, failures: &mut u32) -> Result<(), Error> {
    let consumer: StreamConsumer = consumer_config(&settings.brokers, &settings.group).create()?;
    consumer.subscribe(&[settings.topic.as_str()])?;
    tracing::info!(bus = "kafka", topic = %settings.topic, group = %settings.group,
        "order event consumer subscribed");
    loop {
        let message = match consumer.recv().await {
            Ok(message) => message,
            Err(error) => {
                // librdkafka reconnects by itself; a broker that is away is
                // reported here and the consumer keeps waiting.
                tracing::warn!(bus = "kafka", %error, "order event consumer: broker error");
                *failures = failures.saturating_add(1);
                tokio::time::sleep(backoff(*failures)).await;
                continue;
            }
        };
        sink.handle(received(settings, &message)).await?;
        if sink.crashed() {
            // As if the process died here: the offset is not committed.
            tracing::warn!(bus = "kafka", "crash injected before committing the offset");
            return std::future::pending().await;
        }
        consumer.commit_message(&message, CommitMode::Async)?;
        *failures = 0;
    }
}

/// The record as the sink reads it: trace context and event id from the headers.
fn received<'a>(settings: &'a Settings, message: &'a BorrowedMessage<'a>) -> Received<'a> {
    let headers: Vec<(&str, &[u8])> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .filter_map(|h| h.value.map(|v| (h.key, v)))
                .collect()
        })
        .unwrap_or_default();
    let header_event_id = headers
        .iter()
        .find(|(name, _)| *name == "event_id")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    let mut attributes = vec![
        KeyValue::new("messaging.consumer.group.name", settings.group.clone()),
        KeyValue::new(
            "messaging.destination.partition.id",
            message.partition().to_string(),
        ),
        KeyValue::new("messaging.kafka.offset", message.offset()),
    ];
    if let Some(key) = message.key() {
        attributes.push(KeyValue::new(
            "messaging.kafka.message.key",
            String::from_utf8_lossy(key).into_owned(),
        ));
    }
    Received {
        bus: "kafka",
        destination: &settings.topic,
        position: format!(
            "{}/{}@{}",
            message.topic(),
            message.partition(),
            message.offset()
        ),
        payload: message.payload().unwrap_or_default(),
        trace: TraceHeaders::from_pairs(headers),
        header_event_id,
        attributes,
    }
}
