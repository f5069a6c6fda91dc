//! Events per second through the outbox relay, to Kafka (a tansu broker
//! started here) and to RabbitMQ (`AMQP_URL`, default local).
//!
//! Fills a fresh outbox with `EVENTS` order events (the body the order
//! service writes, about 600 bytes), starts the order service with one bus,
//! and times the relay from start until the bus's backlog is empty: read,
//! publish, broker acknowledgement, mark. Bounded: each run gives up after
//! `LIMIT`. `bench/README.md` records the results.
//!
//! ```sh
//! cargo run --release -p order --example relay_bench [EVENTS]
//! ```

use std::time::{Duration, Instant};

use serde_json::json;
use service_kit::Db;
use service_kit::testing::{KafkaBroker, Running, TestClient, TestDir};

const LIMIT: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    if let Some(broker) = KafkaBroker::start().await {
        let topic = format!("weir.orders.bench-{}", uuid::Uuid::new_v4().simple());
        broker.create_topic(&topic, 3).await;
        let brokers = broker.brokers();
        run("kafka", events, move |c| {
            c.kafka_brokers = Some(brokers);
            c.kafka_topic = topic;
        })
        .await;
    }
    let amqp = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let exchange = format!("weir.orders.bench-{}", uuid::Uuid::new_v4().simple());
    run("rabbitmq", events, move |c| {
        c.amqp_url = Some(amqp);
        c.amqp_exchange = exchange;
    })
    .await;
}

async fn run(bus: &str, events: usize, configure: impl FnOnce(&mut order::Config)) {
    let dir = TestDir::new("relay-bench");
    fill(&dir, events).await;
    let mut config = order::Config::new(dir.path());
    config.outbox_poll_interval = Duration::from_millis(50);
    configure(&mut config);
    let client = TestClient::new();
    let start = Instant::now();
    let order = Running::start(move |l, s| order::run(config, l, s)).await;
    let url = format!("{}/v1/outbox?status=pending&bus={bus}&limit=1", order.url());
    loop {
        let r = client.get(&url).await;
        if r.json["items"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        if start.elapsed() > LIMIT {
            println!("{bus}: not drained within {LIMIT:?}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = start.elapsed();
    println!(
        "{bus}: {events} events in {:.2} s = {:.0} events/s",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64()
    );
    order.stop().await.expect("order stops");
}

/// Writes `events` unpublished events the way the order service does.
async fn fill(dir: &TestDir, events: usize) {
    let url = service_kit::db::database_url(None, dir.path(), "order");
    let db = Db::open(&url, order::MIGRATIONS).await.expect("order db");
    let mut tx = db.begin().await.expect("begin");
    for n in 0..events {
        let event_id = uuid::Uuid::now_v7().to_string();
        let order_id = format!("order-{}", n / 2);
        let kind = if n % 2 == 0 {
            "order.placed"
        } else {
            "order.confirmed"
        };
        let payload = json!({
            "schema_version": order::EVENT_SCHEMA_VERSION,
            "event_id": event_id, "type": kind, "order_id": order_id, "occurred_at_ms": 0,
            "order": {"id": order_id, "customer_id": "bench", "status": "confirmed",
                      "items": [{"product_id": "0193a5c1-0000-7000-8000-000000000001", "quantity": 1}],
                      "total_minor": 4000, "currency": "EUR", "saga_step": "done", "attempts": 0,
                      "created_at_ms": 0, "updated_at_ms": 0},
        });
        sqlx::query(
            "INSERT INTO outbox (event_id, order_id, event_type, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&event_id)
        .bind(&order_id)
        .bind(kind)
        .bind(payload.to_string())
        .bind(0i64)
        .execute(&mut *tx)
        .await
        .expect("insert");
    }
    tx.commit().await.expect("commit");
    db.close().await;
}
