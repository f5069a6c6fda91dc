//! Publishing to Kafka with librdkafka (through `rdkafka`).
//!
//! Record key = order id, so all of one order's events land on one
//! partition and keep their order there; value = the event's JSON body, the
//! same bytes RabbitMQ gets; headers = `event_id`, `event_type`, and the W3C
//! `traceparent`/`tracestate` of the publish span.
//!
//! The producer is idempotent with `acks=all`: a record is acknowledged once
//! every in-sync replica has it, and librdkafka's own retries neither
//! duplicate nor reorder records within a partition. A batch is handed to
//! librdkafka at once (it groups records per partition into few requests)
//! and the acknowledgements are awaited in order. A record still not
//! acknowledged after `message.timeout.ms` fails; the relay then backs off and
//! sends everything not marked again, so a broker outage delays events and
//! loses none.

use std::time::Duration;

use opentelemetry::KeyValue;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use service_kit::messaging::{MessageSpan, TraceHeaders, producer_span};
use service_kit::telemetry::ServiceTelemetry;

use super::relay::{Bus, BusError, Pending};

/// The Kafka side of the relay.
pub(crate) struct KafkaBus {
    brokers: String,
    topic: String,
    message_timeout: Duration,
    telemetry: ServiceTelemetry,
    producer: Option<FutureProducer>,
}

impl KafkaBus {
    pub(crate) fn new(
        brokers: String,
        topic: String,
        message_timeout: Duration,
        telemetry: ServiceTelemetry,
    ) -> Self {
        Self {
            brokers,
            topic,
            message_timeout,
            telemetry,
            producer: None,
        }
    }

    fn headers(event: &Pending, trace: &TraceHeaders) -> OwnedHeaders {
        let mut headers = OwnedHeaders::new_with_capacity(4)
            .insert(Header {
                key: "event_id",
                value: Some(event.event_id.as_str()),
            })
            .insert(Header {
                key: "event_type",
                value: Some(event.event_type.as_str()),
            });
        for (key, value) in trace.pairs() {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        headers
    }
}

/// The producer settings: durable (`acks=all`), idempotent (retries keep
/// order, no duplicates), and bounded (`message.timeout.ms`).
pub(crate) fn producer_config(brokers: &str, message_timeout: Duration) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            message_timeout.as_millis().max(1).to_string(),
        )
        .set("client.id", "weir-order");
    config
}

impl Bus for KafkaBus {
    const NAME: &'static str = "kafka";
    const COLUMN: &'static str = "kafka_published_at";

    async fn connect(&mut self) -> Result<(), BusError> {
        // A fresh producer after a failure: an idempotent producer that hit a
        // fatal error is unusable. librdkafka connects lazily and reconnects on
        // its own; every record of a failed batch has resolved by now.
        self.producer = Some(producer_config(&self.brokers, self.message_timeout).create()?);
        Ok(())
    }

    async fn publish(&mut self, batch: &[Pending]) -> Vec<Result<(), BusError>> {
        let Some(producer) = &self.producer else {
            return batch.iter().map(|_| Err("not connected".into())).collect();
        };
        let mut sent = Vec::with_capacity(batch.len());
        for event in batch {
            let message = MessageSpan {
                system: Self::NAME,
                destination: &self.topic,
                message_id: &event.event_id,
            };
            let (span, trace) = producer_span(
                &self.telemetry,
                message,
                &event.trace,
                vec![KeyValue::new(
                    "messaging.kafka.message.key",
                    event.order_id.clone(),
                )],
            );
            let record = FutureRecord::to(&self.topic)
                .key(event.order_id.as_str())
                .payload(event.payload.as_str())
                .headers(Self::headers(event, &trace));
            let delivery = producer.send_result(record).map_err(|(error, _)| error);
            sent.push((span, delivery));
        }
        let mut results = Vec::with_capacity(batch.len());
        for (mut span, delivery) in sent {
            let result: Result<(), BusError> = match delivery {
                Ok(future) => match future.await {
                    Ok(Ok(delivery)) => {
                        span.set(KeyValue::new(
                            "messaging.destination.partition.id",
                            delivery.partition.to_string(),
                        ));
                        span.set(KeyValue::new("messaging.kafka.offset", delivery.offset));
                        Ok(())
                    }
                    Ok(Err((error, _))) => Err(error.into()),
                    Err(_) => Err("producer dropped the record".into()),
                },
                Err(error) => Err(error.into()),
            };
            if result.is_err() {
                span.record_error("publish_failed");
            }
            results.push(result);
        }
        results
    }
}
