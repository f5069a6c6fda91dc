//! The catalog's own spans: a SERVER span per API request named by its
//! route template, its queries as children, nothing for probes.

use catalog::Config;
use serde_json::json;
use service_kit::testing::{RecordedSpan, Running, TestClient, TestDir, recording_telemetry};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

fn named<'a>(spans: &'a [RecordedSpan], name: &str) -> Vec<&'a RecordedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[tokio::test]
async fn requests_are_server_spans_with_route_and_query_children() {
    let dir = TestDir::new("catalog-tracing");
    let (telemetry, recorder) = recording_telemetry("catalog");
    let mut config = Config::new(dir.path());
    config.seed = false;
    config.telemetry = telemetry;
    let server = Running::start(move |l, s| catalog::run(config, l, s)).await;
    let client = TestClient::new();
    let base = server.url();

    let created = client
        .post(
            &format!("{base}/v1/products"),
            &[("x-weir-admin", "true")],
            &json!({"sku": "LAMP", "name": "Lamp", "price_minor": 3000, "currency": "EUR", "stock": 3}),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.json["id"].as_str().unwrap();
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let got = client
        .call(
            http::Method::GET,
            &format!("{base}/v2/products/{id}"),
            &[("traceparent", &traceparent)],
            None,
        )
        .await
        .unwrap();
    assert_eq!(got.status, 200);
    let missing = client.get(&format!("{base}/v1/products/nope")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(client.get(&format!("{base}/healthz")).await.status, 200);

    let spans = recorder.spans().await;
    assert!(spans.iter().all(|s| s.service == "catalog"), "{spans:#?}");

    // The traced read continues the caller's trace, named by the template.
    let reads = named(&spans, "GET /v2/products/{id}");
    assert_eq!(reads.len(), 1, "{spans:#?}");
    let read = reads[0];
    assert_eq!(read.kind, "server");
    assert_eq!(read.trace_id, TRACE_ID);
    assert_eq!(read.parent_span_id.as_deref(), Some(CALLER_SPAN));
    assert_eq!(read.attr("http.route"), Some("/v2/products/{id}"));
    assert_eq!(
        read.attr("url.path"),
        Some(format!("/v2/products/{id}").as_str())
    );
    assert_eq!(read.attr("http.response.status_code"), Some("200"));
    let queries: Vec<&RecordedSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id.as_deref() == Some(read.span_id.as_str()))
        .collect();
    assert_eq!(queries.len(), 1, "{spans:#?}");
    assert_eq!(queries[0].name, "SELECT products");
    assert_eq!(queries[0].kind, "client");
    assert_eq!(queries[0].attr("db.system.name"), Some("sqlite"));
    assert_eq!(queries[0].attr("db.collection.name"), Some("products"));

    // Without a caller's context a request starts its own trace.
    let create = named(&spans, "POST /v1/products");
    assert_eq!(create.len(), 1);
    assert_eq!(create[0].parent_span_id, None);
    assert_eq!(named(&spans, "INSERT products").len(), 1);

    // A 404 is an answer, not a failure of the server.
    let not_found = named(&spans, "GET /v1/products/{id}");
    assert_eq!(not_found.len(), 1);
    assert_eq!(not_found[0].attr("http.response.status_code"), Some("404"));
    assert!(!not_found[0].error);
    assert!(spans.iter().all(|s| !s.error), "{spans:#?}");

    // Probes make no spans; background work (seeding, sweeping) neither.
    assert!(
        spans.iter().all(|s| s.attr("url.path") != Some("/healthz")),
        "{spans:#?}"
    );
    let servers = spans.iter().filter(|s| s.kind == "server").count();
    assert_eq!(servers, 3, "{spans:#?}");
    assert!(
        spans
            .iter()
            .all(|s| s.kind == "server" || s.parent_span_id.is_some()),
        "every query belongs to a request: {spans:#?}"
    );
    server.stop().await.unwrap();
}
