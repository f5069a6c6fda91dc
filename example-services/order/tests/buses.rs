//! The outbox relays against real brokers: a tansu broker the test starts
//! (Kafka protocol) and RabbitMQ at `AMQP_URL` (default local). Events reach
//! both buses in order per order with their headers; a Kafka outage delays
//! events without blocking orders or losing any; the catalog consuming from
//! Kafka counts sold units exactly and its span joins the order's trace.
//! Skipped with a printed reason when a broker is missing, except under `CI=true`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::*;
use futures_util::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use serde_json::Value;
use service_kit::testing::{
    KafkaBroker, Running, TestClient, eventually, must_not_skip, recording_telemetry,
};

const PATIENCE: Duration = Duration::from_secs(60);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// One message as a test compares them across buses.
#[derive(Debug, Clone)]
struct Seen {
    event_id: String,
    event_type: String,
    order_id: String,
    headers: HashMap<String, String>,
    body: Value,
}

impl Seen {
    fn from(headers: HashMap<String, String>, payload: &[u8]) -> Self {
        let body: Value = serde_json::from_slice(payload).expect("JSON event");
        Self {
            event_id: body["event_id"].as_str().unwrap().to_owned(),
            event_type: body["type"].as_str().unwrap().to_owned(),
            order_id: body["order_id"].as_str().unwrap().to_owned(),
            headers,
            body,
        }
    }
}

/// Reads `topic` from the start in a fresh group until `done` accepts what
/// was read (records in arrival order; within a partition, offset order).
async fn read_kafka(
    broker: &KafkaBroker,
    topic: &str,
    done: impl Fn(&[Seen]) -> bool,
) -> Vec<Seen> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done(&seen) {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} records arrived: {seen:#?}", seen.len()));
        let Ok(message) = message else { continue };
        let mut headers: HashMap<String, String> = message
            .headers()
            .map(|h| {
                h.iter()
                    .filter_map(|h| {
                        h.value
                            .map(|v| (h.key.to_owned(), String::from_utf8_lossy(v).into_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        headers.insert(
            "key".into(),
            String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
        );
        seen.push(Seen::from(headers, message.payload().unwrap_or_default()));
    }
    seen
}

/// Event types per order, first arrival of each event only.
fn per_order(seen: &[Seen]) -> BTreeMap<String, Vec<String>> {
    let mut orders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut ids = std::collections::HashSet::new();
    for s in seen {
        if ids.insert(s.event_id.clone()) {
            orders
                .entry(s.order_id.clone())
                .or_default()
                .push(s.event_type.clone());
        }
    }
    orders
}

async fn pending(client: &TestClient, order: &Running<order::Error>, bus: &str) -> usize {
    let r = client
        .get(&format!(
            "{}/v1/outbox?status=pending&bus={bus}&limit=500",
            order.url()
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.json["items"].as_array().unwrap().len()
}

async fn amqp() -> Option<(String, Connection)> {
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    match tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(c)) => Some((url, c)),
        other => {
            let reason = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            assert!(
                !must_not_skip(),
                "RabbitMQ at {url} is required under CI: {reason}"
            );
            eprintln!("skipping: RabbitMQ at {url} unavailable: {reason}");
            None
        }
    }
}

#[tokio::test]
async fn events_reach_both_buses_in_order_per_order_with_their_headers() {
    let Some((amqp_url, connection)) = amqp().await else {
        return;
    };
    let Some(broker) = KafkaBroker::start().await else {
        return;
    };
    let (exchange, topic) = (unique("weir.orders.test"), unique("weir.orders"));
    broker.create_topic(&topic, 3).await;

    // Our own queue on the test's exchange, bound before any event exists.
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            exchange.as_str().into(),
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
            exchange.as_str().into(),
            "order.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut deliveries = channel
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
    let kettle = peers.product("KETTLE", 4000, 20).await;
    let (telemetry, spans) = recording_telemetry("order");
    let mut config = peers.order_config();
    config.amqp_url = Some(amqp_url);
    config.amqp_exchange = exchange.clone();
    config.kafka_brokers = Some(broker.brokers());
    config.kafka_topic = topic.clone();
    config.telemetry = telemetry;
    let order = start_order(config).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        let r = place(
            &peers.client,
            &order,
            &format!("both-{n}"),
            "kim",
            &[(&kettle, 1)],
        )
        .await;
        assert_eq!(r.json["status"], "confirmed", "{:?}", r.json);
        ids.push(r.json["id"].as_str().unwrap().to_owned());
    }

    let kafka = read_kafka(&broker, &topic, |seen| {
        per_order(seen).values().map(Vec::len).sum::<usize>() >= 8
    })
    .await;
    let mut rabbit = Vec::new();
    while rabbit.len() < 8 {
        let delivery = tokio::time::timeout(PATIENCE, deliveries.next())
            .await
            .expect("RabbitMQ events in time")
            .expect("consumer open")
            .expect("delivery");
        let headers = delivery
            .properties
            .headers()
            .as_ref()
            .map(|t| {
                t.inner()
                    .iter()
                    .filter_map(|(k, v)| match v {
                        AMQPValue::LongString(s) => Some((
                            k.as_str().to_owned(),
                            String::from_utf8_lossy(s.as_bytes()).into_owned(),
                        )),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        rabbit.push(Seen::from(headers, &delivery.data));
    }

    for (bus, seen) in [("kafka", &kafka), ("rabbitmq", &rabbit)] {
        let orders = per_order(seen);
        for id in &ids {
            assert_eq!(
                orders.get(id).map(Vec::as_slice),
                Some(["order.placed".to_owned(), "order.confirmed".to_owned()].as_slice()),
                "{bus}: events of {id} in order"
            );
        }
        for s in seen.iter() {
            assert_eq!(s.headers["event_id"], s.event_id, "{bus}");
            assert_eq!(s.headers["event_type"], s.event_type, "{bus}");
            assert!(
                s.headers["traceparent"].starts_with("00-"),
                "{bus}: {:?}",
                s.headers
            );
            assert_eq!(
                s.body["schema_version"],
                order::EVENT_SCHEMA_VERSION,
                "{bus}"
            );
        }
    }
    for s in &kafka {
        assert_eq!(s.headers["key"], s.order_id, "record key = order id");
    }
    // The same body on both buses.
    for k in &kafka {
        let r = rabbit
            .iter()
            .find(|r| r.event_id == k.event_id)
            .expect("on both buses");
        assert_eq!(r.body, k.body);
    }

    // Each bus marked its own delivery.
    eventually(PATIENCE, async || {
        let left = (
            pending(&peers.client, &order, "kafka").await,
            pending(&peers.client, &order, "rabbitmq").await,
        );
        if left == (0, 0) {
            Ok(())
        } else {
            Err(format!("pending (kafka, rabbitmq): {left:?}"))
        }
    })
    .await;

    // The publish spans continue the orders' traces, and the headers carry them.
    let recorded = spans.spans().await;
    for (system, destination) in [("kafka", &topic), ("rabbitmq", &exchange)] {
        let publish: Vec<_> = recorded
            .iter()
            .filter(|s| s.name == format!("publish {destination}"))
            .collect();
        assert_eq!(publish.len(), 8, "{system}: one span per event");
        for span in &publish {
            assert_eq!(span.kind, "producer");
            assert_eq!(span.attr("messaging.system"), Some(system));
            assert_eq!(span.attr("messaging.operation.type"), Some("send"));
            assert!(
                span.parent_span_id.is_some(),
                "{system}: joined the order's trace"
            );
            let seen = if system == "kafka" { &kafka } else { &rabbit };
            let message_id = span.attr("messaging.message.id").unwrap();
            let header = &seen
                .iter()
                .find(|s| s.event_id == message_id)
                .unwrap()
                .headers["traceparent"];
            assert_eq!(header, &format!("00-{}-{}-01", span.trace_id, span.span_id));
            if system == "kafka" {
                assert!(span.attr("messaging.kafka.message.key").is_some());
            }
        }
    }
    let placed_traces: std::collections::HashSet<_> = recorded
        .iter()
        .filter(|s| s.kind == "server" && s.name.starts_with("POST"))
        .map(|s| s.trace_id.clone())
        .collect();
    assert!(
        recorded
            .iter()
            .filter(|s| s.kind == "producer")
            .all(|s| placed_traces.contains(&s.trace_id)),
        "every publish span is in the trace of the request that placed the order"
    );
    order.stop().await.unwrap();
    let _ = connection.close(0, "done".into()).await;
}

#[tokio::test]
async fn a_kafka_outage_delays_events_without_blocking_orders_or_losing_any() {
    let Some(mut broker) = KafkaBroker::start().await else {
        return;
    };
    let topic = unique("weir.orders");
    broker.create_topic(&topic, 3).await;
    let peers = Peers::start().await;
    let kettle = peers.product("KETTLE", 4000, 50).await;
    let mut config = peers.order_config();
    config.kafka_brokers = Some(broker.brokers());
    config.kafka_topic = topic.clone();
    config.kafka_message_timeout = Duration::from_secs(1);
    config.outbox_poll_interval = Duration::from_millis(100);
    let order = start_order(config).await;

    let r = place(&peers.client, &order, "before", "kim", &[(&kettle, 1)]).await;
    assert_eq!(r.json["status"], "confirmed");
    eventually(PATIENCE, async || {
        match pending(&peers.client, &order, "kafka").await {
            0 => Ok(()),
            n => Err(format!("{n} events not yet on Kafka")),
        }
    })
    .await;

    broker.stop().await;
    let mut during = Vec::new();
    for n in 0..5 {
        let r = place(
            &peers.client,
            &order,
            &format!("during-{n}"),
            "kim",
            &[(&kettle, 2)],
        )
        .await;
        assert_eq!(
            r.json["status"], "confirmed",
            "orders go on while the broker is down"
        );
        during.push(r.json["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        pending(&peers.client, &order, "kafka").await,
        10,
        "the outage's events wait in the outbox"
    );

    broker.resume().await;
    eventually(PATIENCE, async || {
        match pending(&peers.client, &order, "kafka").await {
            0 => Ok(()),
            n => Err(format!("backlog of {n} events not drained")),
        }
    })
    .await;

    let outbox = peers
        .client
        .get(&format!("{}/v1/outbox?limit=500", order.url()))
        .await;
    let all: Vec<String> = outbox.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all.len(), 12);
    let seen = read_kafka(&broker, &topic, |seen| {
        all.iter().all(|id| seen.iter().any(|s| &s.event_id == id))
    })
    .await;
    let orders = per_order(&seen);
    for id in &during {
        assert_eq!(
            orders[id],
            ["order.placed", "order.confirmed"],
            "nothing lost, in order per order"
        );
    }
    order.stop().await.unwrap();
}

#[tokio::test]
async fn the_catalog_counts_sold_units_from_kafka_inside_the_orders_trace() {
    let Some(broker) = KafkaBroker::start().await else {
        return;
    };
    let topic = unique("weir.orders");
    broker.create_topic(&topic, 3).await;
    let (order_t, order_spans) = recording_telemetry("order");
    let (catalog_t, catalog_spans) = recording_telemetry("catalog");
    let (brokers, catalog_topic) = (broker.brokers(), topic.clone());
    let peers = Peers::start_configured(move |c| {
        c.kafka_brokers = Some(brokers);
        c.kafka_topic = catalog_topic;
        c.kafka_group = unique("catalog");
        c.telemetry = catalog_t;
    })
    .await;
    let kettle = peers.product("KETTLE", 4000, 50).await;
    let mut config = peers.order_config();
    config.kafka_brokers = Some(broker.brokers());
    config.kafka_topic = topic.clone();
    config.telemetry = order_t;
    let order = start_order(config).await;
    let mut confirmed = 0;
    for n in 1..=3 {
        let r = place(
            &peers.client,
            &order,
            &format!("sold-{n}"),
            "kim",
            &[(&kettle, n)],
        )
        .await;
        assert_eq!(r.json["status"], "confirmed");
        confirmed += n;
    }
    // More than the stock: the order fails, and failed orders sell nothing.
    let r = place(&peers.client, &order, "too-many", "kim", &[(&kettle, 1000)]).await;
    assert_eq!(r.json["status"], "failed");

    // 3 orders placed and confirmed, 1 placed and failed: 8 events.
    eventually(PATIENCE, async || {
        let r = peers
            .client
            .get(&format!("{}/v2/products/{kettle}", peers.catalog.url()))
            .await;
        let sold = r.json["units_sold"].as_i64().unwrap();
        let metrics = peers
            .client
            .get(&format!("{}/metrics", peers.catalog.url()))
            .await
            .text;
        let handled =
            metrics.contains("weir_catalog_events_total{bus=\"kafka\",outcome=\"applied\"} 8");
        assert!(
            sold <= confirmed,
            "sold {sold}, more than the {confirmed} confirmed"
        );
        if sold == confirmed && handled {
            Ok(())
        } else {
            Err(format!("sold {sold} of {confirmed}; {metrics}"))
        }
    })
    .await;

    let order_spans = order_spans.spans().await;
    let catalog_spans = catalog_spans.spans().await;
    let process: Vec<_> = catalog_spans
        .iter()
        .filter(|s| s.name == format!("process {topic}"))
        .collect();
    assert_eq!(process.len(), 8, "a process span per event");
    for span in &process {
        assert_eq!(span.kind, "consumer");
        assert_eq!(span.attr("messaging.system"), Some("kafka"));
        assert_eq!(span.attr("messaging.operation.type"), Some("process"));
        assert!(
            span.attr("messaging.consumer.group.name")
                .unwrap()
                .starts_with("catalog")
        );
        assert!(span.attr("messaging.kafka.message.key").is_some());
        let parent = span.parent_span_id.as_deref().unwrap();
        let publish = order_spans
            .iter()
            .find(|s| s.span_id == parent)
            .expect("the process span's parent is order's publish span");
        assert_eq!(publish.kind, "producer");
        assert_eq!(publish.trace_id, span.trace_id);
        assert_eq!(
            publish.attr("messaging.message.id"),
            span.attr("messaging.message.id")
        );
        // The database work of the message sits under its process span.
        assert!(
            catalog_spans
                .iter()
                .any(|s| s.parent_span_id.as_deref() == Some(span.span_id.as_str()))
        );
    }
    order.stop().await.unwrap();
}
