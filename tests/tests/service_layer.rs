//! The example services' tracing helper inside a real axum router, served on
//! a real socket: SERVER span per request named by the matched route, child
//! spans for the handler's work, the context injected into outgoing calls.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, State};
use axum::routing::get;
use e2e::{HttpClient, Kind, OtlpReceiver, Shape, StatusCode, TraceTree};
use proxy_core::config::parse_yaml;
use proxy_core::telemetry::{ServiceTelemetry, TelemetryConfig, inject_current_context};

const PATIENCE: Duration = Duration::from_secs(20);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn get_order(State(tel): State<ServiceTelemetry>) -> Result<String, axum::http::StatusCode> {
    let db = tel.db_span("sqlite", "SELECT", "orders");
    tokio::task::yield_now().await;
    db.end();
    let mut outgoing = http::HeaderMap::new();
    tel.inject_current(&mut outgoing);
    // The free function does the same for code that only copies headers.
    let mut copied = http::HeaderMap::new();
    copied.insert(
        "traceparent",
        http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    inject_current_context(&mut copied);
    assert_eq!(copied.get("traceparent"), outgoing.get("traceparent"));
    // Handed back so the test can check what an outgoing call would carry.
    Ok(outgoing
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned())
}

async fn fail() -> axum::http::StatusCode {
    axum::http::StatusCode::SERVICE_UNAVAILABLE
}

#[tokio::test]
async fn axum_router_with_the_service_layer() {
    let rx = OtlpReceiver::grpc().await.unwrap();
    let cfg: TelemetryConfig =
        parse_yaml(&format!("otlp: {{ endpoint: '{}' }}\n", rx.endpoint())).unwrap();
    let tel = ServiceTelemetry::init(&cfg, "order", "1.0.0", |_| None)
        .unwrap()
        .with_route_fn(Arc::new(|p: &http::request::Parts| {
            p.extensions
                .get::<MatchedPath>()
                .map(|m| m.as_str().to_owned())
        }));
    let app = axum::Router::new()
        .route("/v1/orders/{id}", get(get_order))
        .route("/fail", get(fail))
        .route_layer(tel.layer())
        .with_state(tel.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = HttpClient::default();
    let tp = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let reply = client
        .get(
            &format!("http://{addr}/v1/orders/42"),
            &[("traceparent", &tp)],
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let failed = client
        .get(&format!("http://{addr}/fail"), &[("traceparent", &tp)])
        .await
        .unwrap();
    assert_eq!(failed.status, 503);

    assert!(tel.telemetry().flush(PATIENCE).await);
    let spans = tokio::time::timeout(PATIENCE, rx.store().wait_for_trace(TRACE, 3))
        .await
        .unwrap();
    let tree = TraceTree::new(
        spans
            .into_iter()
            .filter(|s| s.name != "GET /fail")
            .collect(),
    )
    .unwrap();
    tree.assert_shape(
        &Shape::server("order")
            .named("GET /v1/orders/{id}")
            .child(Shape::client("order").named("SELECT orders"))
            .exact(),
    );
    let server = tree.root().unwrap();
    assert_eq!(server.attr_str("http.route"), Some("/v1/orders/{id}"));
    assert_eq!(server.attr_str("url.path"), Some("/v1/orders/42"));
    assert_eq!(server.attr_int("http.response.status_code"), Some(200));
    // What the handler would send on names the SERVER span as parent.
    assert_eq!(reply.text(), format!("00-{TRACE}-{}-01", server.span_id));

    let fail = rx
        .store()
        .trace(TRACE)
        .into_iter()
        .find(|s| s.name == "GET /fail")
        .unwrap();
    assert_eq!(fail.kind, Kind::Server);
    assert_eq!(fail.status, StatusCode::Error);
    assert_eq!(fail.attr_str("error.type"), Some("503"));
}
