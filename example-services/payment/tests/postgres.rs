//! Payment on PostgreSQL: concurrent duplicates of one charge are one payment.
//! Skipped (with a message) when no PostgreSQL answers, except under `CI=true`.

use payment::Config;
use serde_json::json;
use service_kit::testing::{PgSchema, Running, TestClient, TestDir};

#[tokio::test]
async fn concurrent_duplicates_charge_once_on_postgres() {
    let Some(pg) = PgSchema::create("weir_payment").await else {
        return;
    };
    let dir = TestDir::new("payment-pg");
    let mut config = Config::new(dir.path());
    config.database_url = Some(pg.url.clone());
    let server = Running::start(move |l, s| payment::run(config, l, s)).await;
    let client = TestClient::new();
    let url = format!("{}/v1/payments", server.url());
    let body =
        json!({"order_id": "o-pg", "amount_minor": 700, "currency": "EUR", "customer_id": "c"});

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(&url, &[("idempotency-key", "pg-key")], &body)
                .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        let r = task.await.unwrap();
        assert!(r.status == 200 || r.status == 201, "{:?}", r.json);
        if r.status == 201 {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    let listed = client.get(&format!("{url}?order_id=o-pg")).await;
    assert_eq!(listed.json["items"].as_array().unwrap().len(), 1);
    server.stop().await.unwrap();
    pg.drop_schema().await;
}
