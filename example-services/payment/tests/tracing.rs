//! The payment service's own spans: its SERVER spans carry the route and
//! the answer, an injected failure marks the span as an error, and a charge
//! shows its insert.

use payment::Config;
use serde_json::json;
use service_kit::testing::{Running, TestClient, TestDir, recording_telemetry};

#[tokio::test]
async fn charges_are_traced_and_injected_failures_are_errors() {
    let dir = TestDir::new("payment-tracing");
    let (telemetry, recorder) = recording_telemetry("payment");
    let mut config = Config::new(dir.path()).with_faults_enabled();
    config.faults.failure_rate = 1.0;
    config.telemetry = telemetry;
    let server = Running::start(move |l, s| payment::run(config, l, s)).await;
    let client = TestClient::new();
    let charges = format!("{}/v1/payments", server.url());
    let body =
        json!({"order_id": "o-1", "amount_minor": 500, "currency": "EUR", "customer_id": "c-1"});

    let refused = client
        .post(&charges, &[("idempotency-key", "k-1")], &body)
        .await;
    assert_eq!(refused.status, 503);
    let healed = client
        .put(
            &format!("{}/admin/faults", server.url()),
            &[],
            &json!({"failure_rate": 0.0}),
        )
        .await;
    assert_eq!(healed.status, 200);
    let charged = client
        .post(&charges, &[("idempotency-key", "k-1")], &body)
        .await;
    assert_eq!(charged.status, 201, "{:?}", charged.json);

    let spans = recorder.spans().await;
    let posts: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "POST /v1/payments")
        .collect();
    assert_eq!(posts.len(), 2, "{spans:#?}");
    assert!(
        posts
            .iter()
            .all(|s| s.service == "payment" && s.kind == "server")
    );
    assert!(
        posts
            .iter()
            .all(|s| s.attr("http.route") == Some("/v1/payments"))
    );
    let (failed, ok): (Vec<_>, Vec<_>) = posts.into_iter().partition(|s| s.error);
    assert_eq!(failed.len(), 1, "{spans:#?}");
    assert_eq!(failed[0].attr("http.response.status_code"), Some("503"));
    assert_eq!(failed[0].attr("error.type"), Some("503"));
    assert_eq!(ok[0].attr("http.response.status_code"), Some("201"));
    let inserts: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "INSERT payments")
        .collect();
    assert_eq!(inserts.len(), 1, "nothing is inserted for a refused charge");
    assert_eq!(
        inserts[0].parent_span_id.as_deref(),
        Some(ok[0].span_id.as_str())
    );
    assert_eq!(inserts[0].attr("db.system.name"), Some("sqlite"));
    assert!(
        spans.iter().any(|s| s.name == "PUT /admin/faults"),
        "{spans:#?}"
    );
    server.stop().await.unwrap();
}
