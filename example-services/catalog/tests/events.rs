//! The catalog's order-event consumers against real brokers: RabbitMQ at
//! `AMQP_URL` (default local) and a tansu broker the tests start. Units sold
//! must equal the confirmed quantities exactly, whatever is redelivered,
//! and a message that cannot be read is set aside without stalling the rest.
//! Skipped with a printed reason when a broker is missing, except under `CI=true`.

use std::time::Duration;

use catalog::Config;
use futures_util::FutureExt as _;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use service_kit::testing::{KafkaBroker, Running, TestClient, TestDir, eventually, must_not_skip};

const PATIENCE: Duration = Duration::from_secs(60);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// An order event body as the order service writes it.
fn event(event_type: &str, order_id: &str, product: &str, quantity: i64) -> (String, Vec<u8>) {
    let event_id = uuid::Uuid::now_v7().to_string();
    let body = json!({
        "schema_version": 1,
        "event_id": event_id,
        "type": event_type,
        "order_id": order_id,
        "occurred_at_ms": 1,
        "order": {"id": order_id, "status": "confirmed",
                  "items": [{"product_id": product, "quantity": quantity}]},
    });
    (event_id, body.to_string().into_bytes())
}

async fn start(dir: &TestDir, tweak: impl FnOnce(&mut Config)) -> Running<catalog::Error> {
    let mut config = Config::new(dir.path());
    config.seed = false;
    tweak(&mut config);
    Running::start(move |listener, shutdown| catalog::run(config, listener, shutdown)).await
}

async fn product(client: &TestClient, catalog: &Running<catalog::Error>) -> String {
    let body = json!({"sku": unique("SKU"), "name": "Kettle", "price_minor": 100, "currency": "EUR", "stock": 1000});
    let r = client
        .post(
            &format!("{}/v1/products", catalog.url()),
            &[("x-weir-admin", "true")],
            &body,
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    r.json["id"].as_str().unwrap().to_owned()
}

async fn units_sold(client: &TestClient, catalog: &Running<catalog::Error>, id: &str) -> i64 {
    let r = client
        .get(&format!("{}/v2/products/{id}", catalog.url()))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.json["units_sold"].as_i64().expect("units_sold in v2")
}

/// `weir_catalog_events_total{bus, outcome}` from the catalog's `/metrics`.
async fn counted(
    client: &TestClient,
    catalog: &Running<catalog::Error>,
    bus: &str,
    outcome: &str,
) -> u64 {
    let text = client.get(&format!("{}/metrics", catalog.url())).await.text;
    let prefix = format!("weir_catalog_events_total{{bus=\"{bus}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Waits until units sold reach `expected` (the consumer works in the
/// background); fails if it passes it.
async fn sold_reaches(
    client: &TestClient,
    catalog: &Running<catalog::Error>,
    id: &str,
    expected: i64,
) {
    eventually(PATIENCE, async || {
        let sold = units_sold(client, catalog, id).await;
        assert!(
            sold <= expected,
            "counted {sold}, more than the {expected} confirmed"
        );
        if sold == expected {
            Ok(())
        } else {
            Err(format!("units_sold is {sold}, waiting for {expected}"))
        }
    })
    .await;
}

// --- RabbitMQ -----------------------------------------------------------------

async fn rabbitmq() -> Option<(String, Connection)> {
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    match tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(connection)) => Some((url, connection)),
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

async fn amqp_channel(connection: &Connection, exchange: &str) -> Channel {
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    channel
}

async fn amqp_publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    event_id: &str,
    body: &[u8],
) {
    let mut headers = FieldTable::default();
    headers.insert(
        "event_id".into(),
        AMQPValue::LongString(LongString::from(event_id.to_owned())),
    );
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
}

/// Configures the catalog for a test's own exchange and queue.
fn on_rabbitmq(url: &str, exchange: &str, queue: &str) -> impl Fn(&mut Config) + Clone {
    let (url, exchange, queue) = (url.to_owned(), exchange.to_owned(), queue.to_owned());
    move |c: &mut Config| {
        c.amqp_url = Some(url.clone());
        c.amqp_exchange = exchange.clone();
        c.amqp_queue = queue.clone();
    }
}

/// Waits until the consumer has declared and bound its queue, so what is
/// published next is routed to it.
async fn consumer_ready(
    client: &TestClient,
    catalog: &Running<catalog::Error>,
    channel: &Channel,
    exchange: &str,
) {
    // A probe event through the exchange: once it is counted, the binding exists.
    eventually(PATIENCE, async || {
        let (id, body) = event("order.placed", "probe", "probe", 1);
        amqp_publish(channel, exchange, "order.placed", &id, &body).await;
        if counted(client, catalog, "rabbitmq", "applied").await > 0 {
            Ok(())
        } else {
            Err("the consumer never received a probe".to_owned())
        }
    })
    .await;
}

#[tokio::test]
async fn rabbitmq_redelivery_counts_once_and_a_poison_message_is_set_aside() {
    redelivery_and_poison(None).await;
}

/// The same on PostgreSQL (the read model's upsert and the duplicate check
/// are written once for both databases).
#[tokio::test]
async fn rabbitmq_redelivery_counts_once_on_postgres() {
    let Some(schema) = service_kit::testing::PgSchema::create("catalog_events").await else {
        return;
    };
    redelivery_and_poison(Some(schema.url.clone())).await;
    schema.drop_schema().await;
}

async fn redelivery_and_poison(database_url: Option<String>) {
    let Some((url, connection)) = rabbitmq().await else {
        return;
    };
    let (exchange, queue) = (unique("weir.orders.test"), unique("catalog.test"));
    let dir = TestDir::new("catalog-events");
    let settings = on_rabbitmq(&url, &exchange, &queue);
    let catalog = start(&dir, move |c| {
        settings(c);
        c.database_url = database_url;
    })
    .await;
    let client = TestClient::new();
    let kettle = product(&client, &catalog).await;
    let channel = amqp_channel(&connection, &exchange).await;
    consumer_ready(&client, &catalog, &channel, &exchange).await;
    let probes = counted(&client, &catalog, "rabbitmq", "applied").await;

    let (first, body) = event("order.confirmed", "o1", &kettle, 2);
    amqp_publish(&channel, &exchange, "order.confirmed", &first, &body).await;
    // The relay sends an event again after a crash between confirm and mark.
    amqp_publish(&channel, &exchange, "order.confirmed", &first, &body).await;
    amqp_publish(
        &channel,
        &exchange,
        "order.confirmed",
        "poison",
        b"{\"event_id\": 42, trunc",
    )
    .await;
    let (placed, body) = event("order.placed", "o2", &kettle, 7);
    amqp_publish(&channel, &exchange, "order.placed", &placed, &body).await;
    let (second, body) = event("order.confirmed", "o2", &kettle, 3);
    amqp_publish(&channel, &exchange, "order.confirmed", &second, &body).await;

    // The message after the poison one is counted: nothing stalled.
    sold_reaches(&client, &catalog, &kettle, 5).await;
    eventually(PATIENCE, async || {
        let applied = counted(&client, &catalog, "rabbitmq", "applied").await;
        let duplicate = counted(&client, &catalog, "rabbitmq", "duplicate").await;
        let aside = counted(&client, &catalog, "rabbitmq", "set_aside").await;
        // A late probe may still be counted as applied: only the floor is exact.
        if applied >= probes + 3 && (duplicate, aside) == (1, 1) {
            Ok(())
        } else {
            Err(format!(
                "applied {applied} (probes {probes}), duplicate {duplicate}, set aside {aside}"
            ))
        }
    })
    .await;
    assert_eq!(units_sold(&client, &catalog, &kettle).await, 5);
    let page = client.get(&format!("{}/v2/products", catalog.url())).await;
    let listed: Vec<&Value> = page.json["items"].as_array().unwrap().iter().collect();
    let row = listed.iter().find(|p| p["id"] == kettle.as_str()).unwrap();
    assert_eq!(row["units_sold"], 5, "the listing shows the count too");
    // The gRPC API shows the same read model.
    let mut grpc =
        catalog::grpc::pb::catalog_service_client::CatalogServiceClient::connect(catalog.url())
            .await
            .expect("h2c connection to the catalog");
    let product = grpc
        .get_product(catalog::grpc::pb::GetProductRequest { id: kettle.clone() })
        .await
        .expect("GetProduct")
        .into_inner();
    assert_eq!(product.units_sold, 5, "GetProduct shows the count too");
    let v1 = client
        .get(&format!("{}/v1/products/{kettle}", catalog.url()))
        .await;
    assert!(v1.json.get("units_sold").is_none(), "v1 is unchanged");

    catalog.stop().await.unwrap();
    let _ = connection.close(0, "done".into()).await;
}

#[tokio::test]
async fn a_rabbitmq_consumer_that_dies_before_acknowledging_loses_nothing() {
    let Some((url, connection)) = rabbitmq().await else {
        return;
    };
    let (exchange, queue) = (unique("weir.orders.test"), unique("catalog.test"));
    let dir = TestDir::new("catalog-events");
    let settings = on_rabbitmq(&url, &exchange, &queue);
    let client = TestClient::new();
    let channel = amqp_channel(&connection, &exchange).await;

    // First run: declares the queue, then dies after handling 1 probe + 3 events.
    let crashing = settings.clone();
    let catalog = start(&dir, move |c| {
        crashing(c);
        c.crash_after_events = Some(4);
    })
    .await;
    let kettle = product(&client, &catalog).await;
    consumer_ready(&client, &catalog, &channel, &exchange).await;
    let mut expected = 0;
    for quantity in 1..=10 {
        let (id, body) = event(
            "order.confirmed",
            &format!("o{quantity}"),
            &kettle,
            quantity,
        );
        amqp_publish(&channel, &exchange, "order.confirmed", &id, &body).await;
        expected += quantity;
    }
    eventually(PATIENCE, async || {
        let applied = counted(&client, &catalog, "rabbitmq", "applied").await;
        if applied >= 4 {
            Ok(())
        } else {
            Err(format!("handled {applied} of 4 before the crash"))
        }
    })
    .await;
    let before = units_sold(&client, &catalog, &kettle).await;
    assert!(
        before < expected,
        "the crash came before the end ({before})"
    );
    catalog.kill();

    // Second run on the same database: the unacknowledged rest arrives again.
    let catalog = start(&dir, settings).await;
    sold_reaches(&client, &catalog, &kettle, expected).await;
    eventually(PATIENCE, async || {
        let duplicate = counted(&client, &catalog, "rabbitmq", "duplicate").await;
        if duplicate >= 1 {
            Ok(())
        } else {
            Err("the event handled but not acknowledged was not redelivered".to_owned())
        }
    })
    .await;
    assert_eq!(units_sold(&client, &catalog, &kettle).await, expected);
    catalog.stop().await.unwrap();
    let _ = connection.close(0, "done".into()).await;
}

// --- Kafka ----------------------------------------------------------------------

fn kafka_producer(broker: &KafkaBroker) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap()
}

async fn kafka_send(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    event_id: &str,
    body: &[u8],
) {
    let headers = OwnedHeaders::new().insert(Header {
        key: "event_id",
        value: Some(event_id),
    });
    producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(body)
                .headers(headers),
            Duration::from_secs(20),
        )
        .map(|r| r.map_err(|(e, _)| e))
        .await
        .expect("record acknowledged");
}

fn on_kafka(broker: &KafkaBroker, topic: &str, group: &str) -> impl Fn(&mut Config) + Clone {
    let (brokers, topic, group) = (broker.brokers(), topic.to_owned(), group.to_owned());
    move |c: &mut Config| {
        c.kafka_brokers = Some(brokers.clone());
        c.kafka_topic = topic.clone();
        c.kafka_group = group.clone();
    }
}

#[tokio::test]
async fn a_kafka_consumer_killed_mid_batch_resumes_without_loss_or_double_count() {
    let Some(broker) = KafkaBroker::start().await else {
        return;
    };
    let (topic, group) = (unique("weir.orders"), unique("catalog"));
    broker.create_topic(&topic, 3).await;
    let producer = kafka_producer(&broker);
    let dir = TestDir::new("catalog-kafka");
    let client = TestClient::new();
    let settings = on_kafka(&broker, &topic, &group);

    let crashing = settings.clone();
    let catalog = start(&dir, move |c| {
        crashing(c);
        c.crash_after_events = Some(12);
    })
    .await;
    let kettle = product(&client, &catalog).await;
    // Thirty orders over the three partitions, all waiting before the consumer reads.
    let mut expected = 0;
    for n in 1..=30 {
        let order = format!("order-{n}");
        let (id, body) = event("order.confirmed", &order, &kettle, n);
        kafka_send(&producer, &topic, &order, &id, &body).await;
        expected += n;
    }
    eventually(PATIENCE, async || {
        let applied = counted(&client, &catalog, "kafka", "applied").await;
        if applied >= 12 {
            Ok(())
        } else {
            Err(format!("handled {applied} of 12 before the crash"))
        }
    })
    .await;
    assert!(units_sold(&client, &catalog, &kettle).await < expected);
    catalog.kill();

    let catalog = start(&dir, settings).await;
    sold_reaches(&client, &catalog, &kettle, expected).await;
    assert!(
        counted(&client, &catalog, "kafka", "duplicate").await >= 1,
        "the record handled but not committed was read again and skipped"
    );
    assert_eq!(units_sold(&client, &catalog, &kettle).await, expected);
    catalog.stop().await.unwrap();
}

#[tokio::test]
async fn a_poison_record_is_set_aside_and_its_partition_goes_on() {
    let Some(broker) = KafkaBroker::start().await else {
        return;
    };
    let (topic, group) = (unique("weir.orders"), unique("catalog"));
    broker.create_topic(&topic, 1).await;
    let producer = kafka_producer(&broker);
    let dir = TestDir::new("catalog-kafka");
    let client = TestClient::new();
    let catalog = start(&dir, on_kafka(&broker, &topic, &group)).await;
    let kettle = product(&client, &catalog).await;

    let (first, body) = event("order.confirmed", "o1", &kettle, 4);
    kafka_send(&producer, &topic, "o1", &first, &body).await;
    kafka_send(&producer, &topic, "o2", "not-json", b"\x00\xffgarbage").await;
    let (newer, body) = event("order.confirmed", "o3", &kettle, 9);
    let newer_body = String::from_utf8(body)
        .unwrap()
        .replace("\"schema_version\":1", "\"schema_version\":99");
    kafka_send(&producer, &topic, "o3", &newer, newer_body.as_bytes()).await;
    let (last, body) = event("order.confirmed", "o4", &kettle, 6);
    kafka_send(&producer, &topic, "o4", &last, &body).await;

    sold_reaches(&client, &catalog, &kettle, 10).await;
    assert_eq!(counted(&client, &catalog, "kafka", "set_aside").await, 2);
    assert_eq!(counted(&client, &catalog, "kafka", "applied").await, 2);
    catalog.stop().await.unwrap();
}
