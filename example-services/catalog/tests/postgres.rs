//! The catalog on PostgreSQL: reservations under concurrency never oversell,
//! and pagination works the same. Skipped (with a message) when no PostgreSQL
//! answers, except under `CI=true`.

use catalog::Config;
use serde_json::json;
use service_kit::testing::{PgSchema, Running, TestClient, TestDir};

#[tokio::test]
async fn concurrent_reservations_on_postgres() {
    let Some(pg) = PgSchema::create("weir_catalog").await else {
        return;
    };
    let dir = TestDir::new("catalog-pg");
    let mut config = Config::new(dir.path());
    config.database_url = Some(pg.url.clone());
    let server = Running::start(move |l, s| catalog::run(config, l, s)).await;
    let client = TestClient::new();
    let base = server.url();

    let page = client.get(&format!("{base}/v1/products?limit=5")).await;
    assert_eq!(page.json["items"].as_array().unwrap().len(), 5, "seeded");
    assert!(page.json["next_cursor"].is_string());

    let body = json!({"sku": "PG-LAST", "name": "Last", "price_minor": 100, "currency": "EUR", "stock": 2});
    let product = client
        .post(
            &format!("{base}/v1/products"),
            &[("x-weir-admin", "true")],
            &body,
        )
        .await;
    assert_eq!(product.status, 201);
    let id = product.json["id"].as_str().unwrap().to_owned();

    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = client.clone();
        let url = format!("{base}/v1/reservations");
        // Two lines in opposite orders: the product-id ordering prevents deadlocks.
        let other = page.json["items"][i % 2]["id"].as_str().unwrap().to_owned();
        let items = if i % 2 == 0 {
            json!([{"product_id": id, "quantity": 1}, {"product_id": other, "quantity": 1}])
        } else {
            json!([{"product_id": other, "quantity": 1}, {"product_id": id, "quantity": 1}])
        };
        let body = json!({"order_id": format!("pg-{i}"), "items": items});
        tasks.push(tokio::spawn(async move {
            client.post(&url, &[], &body).await.status.as_u16()
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            201 => won += 1,
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(won, 2);
    assert_eq!(
        client.get(&format!("{base}/v1/products/{id}")).await.json["stock"],
        0
    );
    server.stop().await.unwrap();
    pg.drop_schema().await;
}
