//! Publishing to RabbitMQ: a durable topic exchange, routing key = event
//! type, persistent messages, publisher confirms.
//!
//! A batch is published back to back on one confirm-mode channel and the
//! confirms are then awaited in order; the broker confirms a message once it
//! has taken responsibility for it (persisted it to the queues it routed to).
//! Message properties carry the event id (`message_id`) and type (`type`);
//! the headers carry them too (`event_id`, `event_type`) beside the W3C
//! `traceparent`/`tracestate` of the publish span.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use opentelemetry::KeyValue;
use service_kit::messaging::{MessageSpan, producer_span};
use service_kit::telemetry::ServiceTelemetry;

use super::relay::{Bus, BusError, Pending};

/// The RabbitMQ side of the relay.
pub(crate) struct AmqpBus {
    url: String,
    exchange: String,
    telemetry: ServiceTelemetry,
    open: Option<(Connection, Channel)>,
}

impl AmqpBus {
    pub(crate) fn new(url: String, exchange: String, telemetry: ServiceTelemetry) -> Self {
        Self {
            url,
            exchange,
            telemetry,
            open: None,
        }
    }

    fn headers(event: &Pending, trace: &service_kit::messaging::TraceHeaders) -> FieldTable {
        let mut headers = FieldTable::default();
        let mut put = |name: &str, value: &str| {
            headers.insert(
                name.into(),
                AMQPValue::LongString(LongString::from(value.to_owned())),
            );
        };
        put("event_id", &event.event_id);
        put("event_type", &event.event_type);
        put("order_id", &event.order_id);
        for (name, value) in trace.pairs() {
            put(name, value);
        }
        headers
    }
}

impl Bus for AmqpBus {
    const NAME: &'static str = "rabbitmq";
    const COLUMN: &'static str = "published_at";

    async fn connect(&mut self) -> Result<(), BusError> {
        if let Some((connection, _)) = self.open.take() {
            let _ = connection.close(0, "reconnecting".into()).await;
        }
        let connection = Connection::connect(&self.url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.open = Some((connection, channel));
        Ok(())
    }

    async fn publish(&mut self, batch: &[Pending]) -> Vec<Result<(), BusError>> {
        let Some((_, channel)) = &self.open else {
            return batch.iter().map(|_| Err("not connected".into())).collect();
        };
        let mut sent = Vec::with_capacity(batch.len());
        for event in batch {
            let message = MessageSpan {
                system: Self::NAME,
                destination: &self.exchange,
                message_id: &event.event_id,
            };
            let (span, trace) = producer_span(
                &self.telemetry,
                message,
                &event.trace,
                vec![KeyValue::new(
                    "messaging.rabbitmq.destination.routing_key",
                    event.event_type.clone(),
                )],
            );
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_message_id(event.event_id.as_str().into())
                .with_type(event.event_type.as_str().into())
                .with_headers(Self::headers(event, &trace));
            let publish = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    event.event_type.as_str().into(),
                    BasicPublishOptions::default(),
                    event.payload.as_bytes(),
                    properties,
                )
                .await;
            sent.push((span, publish));
        }
        let mut results = Vec::with_capacity(batch.len());
        for ((mut span, publish), event) in sent.into_iter().zip(batch) {
            let result: Result<(), BusError> = match publish {
                Ok(confirm) => match confirm.await {
                    Ok(confirmation) if confirmation.is_ack() => Ok(()),
                    Ok(_) => Err(format!("broker refused event {}", event.event_id).into()),
                    Err(error) => Err(error.into()),
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
