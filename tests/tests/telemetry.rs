//! proxy-core telemetry against a real (in-process) OTLP receiver: export over
//! gRPC and HTTP, span trees across hops, propagation formats, sampling, and
//! the never-blocking queue when the collector is unreachable.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use tower::{Layer, ServiceExt};

use e2e::{Kind, OtlpReceiver, Shape, StatusCode, TraceTree};
use proxy_core::config::parse_yaml;
use proxy_core::telemetry::{
    ClientSpanInfo, ServerSpanInfo, ServiceTelemetry, Telemetry, TelemetryConfig, TelemetrySettings,
};

/// Upper bound for awaiting an event that should arrive promptly; only hit
/// when the code under test is broken (never asserted as a duration).
const PATIENCE: Duration = Duration::from_secs(20);

fn settings(service: &str, yaml: &str) -> TelemetrySettings {
    let cfg: TelemetryConfig = parse_yaml(yaml).expect("test config parses");
    cfg.resolve("telemetry", service, "9.9.9", |_| None)
        .expect("test config is valid")
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

#[tokio::test]
async fn grpc_export_carries_resource_and_http_attributes() {
    let rx = OtlpReceiver::grpc().await.unwrap();
    let t = Telemetry::init(&settings(
        "gateway",
        &format!("otlp: {{ endpoint: '{}' }}\n", rx.endpoint()),
    ))
    .unwrap();

    let req = request("POST", "/v1/orders", &[("host", "api.example.com:8080")]);
    let mut server = t.server_span(&req, ServerSpanInfo::default());
    server.set_route("/v1/orders", "orders-v1");
    server.set_ratelimit_decision("allowed");
    let trace_id = server.trace_id().unwrap().to_string();
    let (mut up, ()) = request("POST", "http://order/v1/orders", &[]).into_parts();
    let mut client = t.client_span(
        server.context(),
        &mut up,
        ClientSpanInfo {
            attempt: 1,
            upstream: Some("order"),
            endpoint: Some("127.0.0.1:4143"),
            ..Default::default()
        },
    );
    client.record_response(http::StatusCode::CREATED);
    client.end();
    server.record_response(http::StatusCode::CREATED);
    server.end();

    assert!(t.flush(PATIENCE).await);
    let spans = tokio::time::timeout(PATIENCE, rx.store().wait_for_trace(&trace_id, 2))
        .await
        .unwrap();
    let tree = TraceTree::new(spans).unwrap();
    tree.assert_shape(
        &Shape::server("gateway")
            .named("POST /v1/orders")
            .child(Shape::client("gateway").named("POST"))
            .exact(),
    );
    let root = tree.root().unwrap();
    assert_eq!(root.attr_str("http.request.method"), Some("POST"));
    assert_eq!(root.attr_str("http.route"), Some("/v1/orders"));
    assert_eq!(root.attr_str("weir.route"), Some("orders-v1"));
    assert_eq!(root.attr_str("url.path"), Some("/v1/orders"));
    assert_eq!(root.attr_str("server.address"), Some("api.example.com"));
    assert_eq!(root.attr_int("server.port"), Some(8080));
    assert_eq!(root.attr_int("http.response.status_code"), Some(201));
    assert_eq!(root.attr_str("weir.ratelimit.decision"), Some("allowed"));
    assert_eq!(root.status, StatusCode::Unset);
    assert_eq!(
        root.resource
            .get("service.version")
            .and_then(|v| v.as_str()),
        Some("9.9.9")
    );
    assert!(
        root.resource
            .get("service.instance.id")
            .and_then(|v| v.as_str())
            .is_some_and(|v| v.len() == 36)
    );

    let client = tree.children(root)[0];
    assert_eq!(client.attr_str("weir.upstream"), Some("order"));
    assert_eq!(client.attr_str("weir.endpoint"), Some("127.0.0.1:4143"));
    assert_eq!(client.attr_str("server.address"), Some("127.0.0.1"));
    assert_eq!(client.attr_int("server.port"), Some(4143));
    assert_eq!(client.attr_int("weir.retry.attempt"), Some(1));
    // The outgoing request carries the client span as its parent.
    let tp = up.headers["traceparent"].to_str().unwrap();
    assert_eq!(tp, format!("00-{trace_id}-{}-01", client.span_id));
    assert!(t.shutdown(PATIENCE).await);
}

#[tokio::test]
async fn http_protobuf_export_reaches_the_http_receiver() {
    let rx = OtlpReceiver::http().await.unwrap();
    let t = Telemetry::init(&settings(
        "catalog",
        &format!(
            "otlp: {{ endpoint: '{}', protocol: http }}\n",
            rx.endpoint()
        ),
    ))
    .unwrap();
    let mut span = t.server_span(
        &request("GET", "/v1/products", &[]),
        ServerSpanInfo::default(),
    );
    span.record_response(http::StatusCode::OK);
    span.end();
    assert!(t.flush(PATIENCE).await);
    let spans = tokio::time::timeout(PATIENCE, rx.store().wait_for_count(1))
        .await
        .unwrap();
    assert_eq!(spans[0].service, "catalog");
    assert_eq!(spans[0].kind, Kind::Server);
    assert_eq!(t.stats().exported(), 1);
}

/// gateway → sidecar → app, three handles as three processes would have,
/// one trace, each hop's SERVER span the child of the previous hop's CLIENT span.
#[tokio::test]
async fn hops_form_one_trace_with_retries_and_errors_visible() {
    let rx = OtlpReceiver::grpc().await.unwrap();
    let cfg = |name: &str| {
        settings(
            name,
            &format!("otlp: {{ endpoint: '{}' }}\n", rx.endpoint()),
        )
    };
    let gateway = Telemetry::init(&cfg("gateway")).unwrap();
    let sidecar = Telemetry::init(&cfg("payment-sidecar")).unwrap();
    let app = ServiceTelemetry::new(Telemetry::init(&cfg("payment")).unwrap()).with_route_fn(
        Arc::new(|p: &http::request::Parts| Some(p.uri.path().to_owned())),
    );

    let mut g = gateway.server_span(
        &request("POST", "/v1/payments", &[]),
        ServerSpanInfo::default(),
    );
    let trace_id = g.trace_id().unwrap().to_string();
    // Attempt 1 fails with 503, attempt 2 succeeds: two CLIENT spans.
    for (attempt, status, reason) in [(1, 503, None), (2, 201, Some("503"))] {
        let mut out = request("POST", "/v1/payments", &[]);
        let mut c = gateway.client_span(
            g.context(),
            &mut out,
            ClientSpanInfo {
                attempt,
                retry_reason: reason,
                upstream: Some("payment"),
                ..Default::default()
            },
        );
        // The sidecar receives `out` with the injected headers.
        let mut s = sidecar.server_span(&out, ServerSpanInfo::default());
        let status = http::StatusCode::from_u16(status).unwrap();
        if status.is_success() {
            // The app, behind the sidecar, handles it inside the tower layer.
            let mut inner_req = request("POST", "/payments", &[]);
            sidecar
                .propagation()
                .inject(s.context(), inner_req.headers_mut());
            let resp = app_service(app.clone()).oneshot(inner_req).await.unwrap();
            assert_eq!(resp.status(), 201);
        }
        s.record_response(status);
        c.record_response(status);
    }
    g.record_response(http::StatusCode::CREATED);
    g.end();

    for t in [&gateway, &sidecar, app.telemetry()] {
        assert!(t.flush(PATIENCE).await);
    }
    let spans = tokio::time::timeout(PATIENCE, rx.store().wait_for_trace(&trace_id, 8))
        .await
        .unwrap();
    let tree = TraceTree::new(spans).unwrap();
    tree.assert_shape(
        &Shape::server("gateway")
            .child(
                Shape::client("gateway")
                    .that("attempt 1 failed with 503", |s| {
                        s.attr_int("weir.retry.attempt") == Some(1) && s.status == StatusCode::Error
                    })
                    .child(
                        Shape::server("payment-sidecar")
                            .that("503", |s| s.status == StatusCode::Error),
                    ),
            )
            .child(
                Shape::client("gateway")
                    .that("attempt 2 retried after 503", |s| {
                        s.attr_int("weir.retry.attempt") == Some(2)
                            && s.attr_str("weir.retry.reason") == Some("503")
                            && s.status == StatusCode::Unset
                    })
                    .child(
                        Shape::server("payment-sidecar").child(
                            Shape::server("payment")
                                .named("POST /payments")
                                .child(Shape::client("payment").named("INSERT payments"))
                                .child(Shape::new("payment", Kind::Internal).named("charge")),
                        ),
                    ),
            )
            .exact(),
    );
}

/// A stand-in for an example-service handler behind the kit's layer: a
/// database span, an internal span, an outgoing call with the context injected.
fn app_service(
    app: ServiceTelemetry,
) -> impl tower::Service<http::Request<()>, Response = http::Response<()>, Error = Infallible> {
    let layer = app.layer();
    layer.layer(tower::service_fn(move |req: http::Request<()>| {
        handler(app.clone(), req)
    }))
}

async fn handler(
    app: ServiceTelemetry,
    _req: http::Request<()>,
) -> Result<http::Response<()>, Infallible> {
    let db = app.db_span("sqlite", "INSERT", "payments");
    tokio::task::yield_now().await;
    db.end();
    let charge = app.span("charge", vec![]);
    let mut outgoing = http::HeaderMap::new();
    app.inject_current(&mut outgoing);
    assert!(
        outgoing.contains_key("traceparent"),
        "handler context reaches outgoing headers"
    );
    charge.end();
    let mut resp = http::Response::new(());
    *resp.status_mut() = http::StatusCode::CREATED;
    Ok(resp)
}
