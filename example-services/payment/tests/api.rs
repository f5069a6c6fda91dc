//! Payment over real HTTP with a real SQLite file.

use payment::{Config, FaultSettings};
use serde_json::json;
use service_kit::testing::{Running, TestClient, TestDir};

async fn start(dir: &TestDir, faults: FaultSettings) -> Running<payment::Error> {
    let mut config = Config::new(dir.path()).with_faults_enabled();
    config.faults = faults;
    Running::start(move |listener, shutdown| payment::run(config, listener, shutdown)).await
}

fn charge(order: &str, amount: i64) -> serde_json::Value {
    json!({"order_id": order, "amount_minor": amount, "currency": "EUR", "customer_id": "c-1"})
}

#[tokio::test]
async fn same_key_same_payment_even_when_concurrent() {
    let dir = TestDir::new("payment");
    let server = start(&dir, FaultSettings::default()).await;
    let client = TestClient::new();
    let url = format!("{}/v1/payments", server.url());

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(&url, &[("idempotency-key", "k-1")], &charge("o-1", 999))
                .await
        }));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for task in tasks {
        let response = task.await.unwrap();
        assert!(
            response.status == 201 || response.status == 200,
            "{:?}",
            response.json
        );
        if response.status == 201 {
            created += 1;
        }
        ids.push(response.json["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(created, 1, "exactly one request charges");
    ids.dedup();
    assert_eq!(ids.len(), 1, "all requests see the same payment");

    let listed = client.get(&format!("{url}?order_id=o-1")).await;
    assert_eq!(listed.json["items"].as_array().unwrap().len(), 1);

    let reused = client
        .post(&url, &[("idempotency-key", "k-1")], &charge("o-1", 1000))
        .await;
    assert_eq!(reused.status, 409);
    assert_eq!(
        reused.json["type"],
        "https://weir.dev/problems/idempotency-key-reused"
    );

    let faults = client.get(&format!("{}/admin/faults", server.url())).await;
    assert_eq!(faults.json["charge_requests"], 9);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn validation_names_the_field() {
    let dir = TestDir::new("payment");
    let server = start(&dir, FaultSettings::default()).await;
    let client = TestClient::new();
    let url = format!("{}/v1/payments", server.url());

    let no_key = client.post(&url, &[], &charge("o", 10)).await;
    assert_eq!(no_key.status, 422);
    assert_eq!(no_key.json["field"], "Idempotency-Key");
    let zero = client
        .post(&url, &[("idempotency-key", "k")], &charge("o", 0))
        .await;
    assert_eq!(zero.status, 422);
    assert_eq!(zero.json["field"], "amount_minor");
    let missing = client
        .post(
            &url,
            &[("idempotency-key", "k")],
            &json!({"order_id": "o", "amount_minor": 5, "currency": "EUR"}),
        )
        .await;
    assert_eq!(missing.json["field"], "customer_id");
    let bad_rate = client
        .put(
            &format!("{}/admin/faults", server.url()),
            &[],
            &json!({"failure_rate": 1.5}),
        )
        .await;
    assert_eq!(bad_rate.status, 422);
    assert_eq!(bad_rate.json["field"], "failure_rate");
    let list = client.get(&url).await;
    assert_eq!(list.json["field"], "order_id");
    let faults = client.get(&format!("{}/admin/faults", server.url())).await;
    assert_eq!(
        faults.json["charge_requests"], 3,
        "rejected charge requests are counted too"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn injected_failures_decline_rules_and_refunds() {
    let dir = TestDir::new("payment");
    let server = start(&dir, FaultSettings::default()).await;
    let client = TestClient::new();
    let base = server.url();

    let set = client
        .put(
            &format!("{base}/admin/faults"),
            &[],
            &json!({"failure_rate": 1.0, "latency_ms": 0, "decline_over_minor": 5000}),
        )
        .await;
    assert_eq!(set.status, 200);
    assert_eq!(set.json["decline_over_minor"], 5000);
    let failed = client
        .post(
            &format!("{base}/v1/payments"),
            &[("idempotency-key", "a")],
            &charge("o-a", 100),
        )
        .await;
    assert_eq!(failed.status, 503);
    assert_eq!(
        failed.json["type"],
        "https://weir.dev/problems/processor-unavailable"
    );
    let none = client
        .get(&format!("{base}/v1/payments?order_id=o-a"))
        .await;
    assert!(
        none.json["items"].as_array().unwrap().is_empty(),
        "a 503 charges nothing"
    );

    // Read-modify-write of the knobs works with the report as read.
    let mut report = client.get(&format!("{base}/admin/faults")).await.json;
    report["failure_rate"] = json!(0.0);
    assert_eq!(
        client
            .put(&format!("{base}/admin/faults"), &[], &report)
            .await
            .status,
        200
    );

    let declined = client
        .post(
            &format!("{base}/v1/payments"),
            &[("idempotency-key", "b")],
            &charge("o-b", 5001),
        )
        .await;
    assert_eq!(declined.status, 402);
    assert_eq!(
        declined.json["type"],
        "https://weir.dev/problems/payment-declined"
    );
    let replay = client
        .post(
            &format!("{base}/v1/payments"),
            &[("idempotency-key", "b")],
            &charge("o-b", 5001),
        )
        .await;
    assert_eq!(replay.status, 402);
    assert_eq!(replay.json["payment_id"], declined.json["payment_id"]);

    let paid = client
        .post(
            &format!("{base}/v1/payments"),
            &[("idempotency-key", "c")],
            &charge("o-c", 4000),
        )
        .await;
    assert_eq!(paid.status, 201);
    assert_eq!(paid.json["status"], "succeeded");
    let id = paid.json["id"].as_str().unwrap();
    let refunded = client
        .post(&format!("{base}/v1/payments/{id}/refund"), &[], &json!({}))
        .await;
    assert_eq!(refunded.json["status"], "refunded");
    let again = client
        .post(&format!("{base}/v1/payments/{id}/refund"), &[], &json!({}))
        .await;
    assert_eq!(again.status, 200);
    let declined_id = declined.json["payment_id"].as_str().unwrap();
    let not_refundable = client
        .post(
            &format!("{base}/v1/payments/{declined_id}/refund"),
            &[],
            &json!({}),
        )
        .await;
    assert_eq!(not_refundable.status, 409);
    assert_eq!(
        client.get(&format!("{base}/v1/payments/nope")).await.status,
        404
    );
    let doc = client.get(&format!("{base}/openapi.json")).await;
    assert!(doc.json["paths"]["/admin/faults"].is_object());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn injected_refund_failures_refund_nothing_until_healed() {
    let dir = TestDir::new("payment");
    let server = start(&dir, FaultSettings::default()).await;
    let client = TestClient::new();
    let base = server.url();
    let paid = client
        .post(
            &format!("{base}/v1/payments"),
            &[("idempotency-key", "r")],
            &charge("o-r", 700),
        )
        .await;
    assert_eq!(paid.status, 201);
    let id = paid.json["id"].as_str().unwrap();
    let set = client
        .put(
            &format!("{base}/admin/faults"),
            &[],
            &json!({"refund_failure_rate": 1.0}),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.json);
    let refused = client
        .post(&format!("{base}/v1/payments/{id}/refund"), &[], &json!({}))
        .await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.headers["retry-after"], "1");
    let payment = client.get(&format!("{base}/v1/payments/{id}")).await;
    assert_eq!(payment.json["status"], "succeeded", "nothing refunded");

    client
        .put(&format!("{base}/admin/faults"), &[], &json!({}))
        .await;
    let refunded = client
        .post(&format!("{base}/v1/payments/{id}/refund"), &[], &json!({}))
        .await;
    assert_eq!(refunded.status, 200);
    assert_eq!(refunded.json["status"], "refunded");
    let report = client.get(&format!("{base}/admin/faults")).await;
    assert_eq!(report.json["refund_requests"], 2);
    server.stop().await.unwrap();
}

/// Without `faults_enabled` (the default, and `PAYMENT_FAULTS` unset) the
/// knobs do not exist: `404` problem+json, and settings given at start-up do
/// not apply.
#[tokio::test]
async fn fault_knobs_are_off_unless_enabled() {
    let dir = TestDir::new("payment");
    let mut config = Config::new(dir.path());
    config.faults.failure_rate = 1.0;
    config.faults.refund_failure_rate = 1.0;
    let server = Running::start(move |l, s| payment::run(config, l, s)).await;
    let client = TestClient::new();
    let base = server.url();

    let get = client.get(&format!("{base}/admin/faults")).await;
    assert_eq!(get.status, 404);
    assert_eq!(get.headers["content-type"], "application/problem+json");
    let put = client
        .put(
            &format!("{base}/admin/faults"),
            &[],
            &json!({"failure_rate": 1.0}),
        )
        .await;
    assert_eq!(put.status, 404);
    assert_eq!(put.headers["content-type"], "application/problem+json");

    let paid = client
        .post(
            &format!("{base}/v1/payments"),
            &[("idempotency-key", "off")],
            &charge("o-off", 100),
        )
        .await;
    assert_eq!(paid.status, 201, "no injected failure: {:?}", paid.json);
    let id = paid.json["id"].as_str().unwrap();
    let refunded = client
        .post(&format!("{base}/v1/payments/{id}/refund"), &[], &json!({}))
        .await;
    assert_eq!(refunded.status, 200);
    server.stop().await.unwrap();
}
