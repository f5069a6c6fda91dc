//! The order service on PostgreSQL: the same saga, recovery and concurrency
//! guarantees as on SQLite. Skipped (with a message) when no PostgreSQL
//! answers, except under `CI=true`.

mod common;

use common::*;
use order::SagaStep;
use serde_json::json;
use service_kit::testing::PgSchema;

#[tokio::test]
async fn saga_recovery_and_last_unit_on_postgres() {
    let Some(pg) = PgSchema::create("weir_order").await else {
        return;
    };
    let peers = Peers::start().await;
    let desk = peers.product("DESK", 25_000, 3).await;
    let mut config = peers.order_config();
    config.database_url = Some(pg.url.clone());

    // Happy path.
    let order = start_order(config.clone()).await;
    let r = place(&peers.client, &order, "pg-1", "ivy", &[(&desk, 1)]).await;
    assert_eq!(r.json["status"], "confirmed", "{:?}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        events(&peers.client, &order, &id).await,
        ["order.placed", "order.confirmed"]
    );
    let ready = peers.client.get(&format!("{}/readyz", order.url())).await;
    assert_eq!(ready.json["database"], "postgres");

    // Declined: compensated.
    peers.faults(json!({"decline_over_minor": 10_000})).await;
    let r = place(&peers.client, &order, "pg-2", "ivy", &[(&desk, 1)]).await;
    assert_eq!(r.json["status"], "failed");
    assert_eq!(peers.stock(&desk).await, 2);
    peers.faults(json!({})).await;
    order.stop().await.unwrap();

    // Crash after the charge, recovery on restart: one payment, confirmed.
    let crashing = start_order(crash_after(config.clone(), SagaStep::Charge)).await;
    let r = place(&peers.client, &crashing, "pg-3", "jay", &[(&desk, 1)]).await;
    assert_eq!(r.json["status"], "pending");
    let crashed_id = r.json["id"].as_str().unwrap().to_owned();
    crashing.kill();
    let order = start_order(config.clone()).await;
    let done = settled(&peers.client, &order, &crashed_id).await;
    assert_eq!(done["status"], "confirmed");
    assert_eq!(peers.payments_of(&crashed_id).await.len(), 1);
    assert_eq!(peers.stock(&desk).await, 1);

    // Concurrent orders for the last unit: one winner.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let client = peers.client.clone();
        let url = format!("{}/v1/orders", order.url());
        let body =
            json!({"customer_id": format!("k{i}"), "items": [{"product_id": desk, "quantity": 1}]});
        tasks.push(tokio::spawn(async move {
            client
                .post(&url, &[("idempotency-key", &format!("pg-race-{i}"))], &body)
                .await
                .json
        }));
    }
    let mut confirmed = 0;
    for task in tasks {
        if task.await.unwrap()["status"] == "confirmed" {
            confirmed += 1;
        }
    }
    assert_eq!(confirmed, 1);
    assert_eq!(peers.stock(&desk).await, 0);

    // Same key, same order, also across the unique index on PostgreSQL.
    let again = place(&peers.client, &order, "pg-1", "ivy", &[(&desk, 1)]).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json["id"], id.as_str());
    order.stop().await.unwrap();
    pg.drop_schema().await;
}

/// A refund refused for a while during compensation is retried until done,
/// across a restart, with the saga's state in PostgreSQL.
#[tokio::test]
async fn refund_retried_until_done_on_postgres() {
    let Some(pg) = PgSchema::create("weir_order_refund").await else {
        return;
    };
    // Reservations expire at once, so the commit after payment is refused.
    let peers = Peers::start_with(std::time::Duration::ZERO).await;
    let mut config = peers.order_config();
    config.database_url = Some(pg.url.clone());
    config.recovery_interval = std::time::Duration::from_secs(600);
    refund::refund_survives_failures_and_a_restart(&peers, config).await;
    pg.drop_schema().await;
}
