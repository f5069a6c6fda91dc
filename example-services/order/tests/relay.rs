//! The outbox relay against a real RabbitMQ: events reach a queue bound to
//! the `weir.orders` exchange, in order, and are marked sent. Skipped (with a
//! message) when no broker answers, except under `CI=true`.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use service_kit::testing::eventually;

#[tokio::test]
async fn events_are_published_in_order_and_marked_sent() {
    let amqp = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let connection = match tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(&amqp, ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(c)) => c,
        other => {
            let reason = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            assert!(
                !service_kit::testing::must_not_skip(),
                "RabbitMQ at {amqp} is required under CI: {reason}"
            );
            eprintln!("skipping: RabbitMQ at {amqp} unavailable: {reason}");
            return;
        }
    };
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            order::EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.name().clone(),
            order::EXCHANGE.into(),
            "order.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();

    let peers = Peers::start().await;
    let kettle = peers.product("KETTLE", 4000, 2).await;
    let mut config = peers.order_config();
    config.amqp_url = Some(amqp.clone());
    let order = start_order(config).await;
    let r = place(&peers.client, &order, "amqp-1", "kim", &[(&kettle, 1)]).await;
    assert_eq!(r.json["status"], "confirmed");
    let id = r.json["id"].as_str().unwrap().to_owned();

    // Other tests may publish too: keep only this order's events.
    let mut received = Vec::new();
    while received.len() < 2 {
        let delivery = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .expect("no event within 20 s")
            .expect("consumer ended")
            .expect("delivery");
        let event: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap();
        if event["order_id"] == id.as_str() {
            assert_eq!(
                delivery.routing_key.as_str(),
                event["type"].as_str().unwrap()
            );
            received.push(event["type"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(received, ["order.placed", "order.confirmed"]);

    // Marked sent after the broker's confirm (which may trail the delivery slightly).
    eventually(Duration::from_secs(10), async || {
        let pending = peers
            .client
            .get(&format!(
                "{}/v1/outbox?status=pending&order_id={id}",
                order.url()
            ))
            .await;
        if pending.json["items"].as_array().unwrap().is_empty() {
            Ok(())
        } else {
            Err("events never marked sent".to_owned())
        }
    })
    .await;
    let sent = peers
        .client
        .get(&format!(
            "{}/v1/outbox?status=sent&order_id={id}",
            order.url()
        ))
        .await;
    assert_eq!(sent.json["items"].as_array().unwrap().len(), 2);
    order.stop().await.unwrap();
    let _ = connection.close(0, "done".into()).await;
}
