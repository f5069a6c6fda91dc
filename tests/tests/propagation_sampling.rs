//! Trace context across hops in every accepted format, and parent-based
//! sampling: the edge decides, everyone after it honours the decision.

use std::time::Duration;

use e2e::{OtlpReceiver, TraceTree};
use proxy_core::config::parse_yaml;
use proxy_core::telemetry::{ClientSpanInfo, ServerSpanInfo, Telemetry, TelemetryConfig};

const PATIENCE: Duration = Duration::from_secs(20);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn telemetry(service: &str, rx: &OtlpReceiver, extra: &str) -> Telemetry {
    let cfg: TelemetryConfig = parse_yaml(&format!(
        "otlp: {{ endpoint: '{}' }}\n{extra}",
        rx.endpoint()
    ))
    .unwrap();
    Telemetry::init(&cfg.resolve("telemetry", service, "1", |_| None).unwrap()).unwrap()
}

fn request(headers: &[(&str, &str)]) -> http::Request<()> {
    let mut b = http::Request::builder().uri("/v1/orders");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

/// The incoming headers are honoured, the hop's spans are exported under the
/// caller's trace, and what goes out names the hop's CLIENT span as parent.
async fn hop(incoming: &[(&str, &str)], extra: &str) -> (http::HeaderMap, TraceTree) {
    let rx = OtlpReceiver::grpc().await.unwrap();
    let t = telemetry("order-sidecar", &rx, extra);
    let server = t.server_span(&request(incoming), ServerSpanInfo::default());
    let (mut out, ()) = request(&[]).into_parts();
    let client = t.client_span(
        server.context(),
        &mut out,
        ClientSpanInfo {
            attempt: 1,
            ..Default::default()
        },
    );
    client.end();
    server.end();
    assert!(t.flush(PATIENCE).await);
    let spans = tokio::time::timeout(PATIENCE, rx.store().wait_for_trace(TRACE, 2))
        .await
        .unwrap();
    (out.headers, TraceTree::new(spans).unwrap())
}

fn assert_continues_caller(tree: &TraceTree, out: &http::HeaderMap) {
    // The caller's span is not ours, so our SERVER span is the tree's root,
    // with the caller's span id from the headers as its parent.
    let root = tree.root().unwrap();
    assert_eq!(root.trace_id, TRACE);
    assert_eq!(root.parent_span_id.as_deref(), Some(PARENT));
    let client = tree.children(root)[0];
    assert_eq!(
        out["traceparent"],
        format!("00-{TRACE}-{}-01", client.span_id).as_str()
    );
}

#[tokio::test]
async fn w3c_with_tracestate_and_baggage_crosses_a_hop() {
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let (out, tree) = hop(
        &[
            ("traceparent", &tp),
            ("tracestate", "vendor=abc"),
            ("baggage", "tenant=acme"),
        ],
        "",
    )
    .await;
    assert_continues_caller(&tree, &out);
    assert_eq!(out["tracestate"], "vendor=abc");
    assert_eq!(out["baggage"], "tenant=acme");
    assert!(!out.contains_key("b3"));
}

#[tokio::test]
async fn b3_single_in_w3c_and_b3_single_out() {
    let b3 = format!("{TRACE}-{PARENT}-1");
    let (out, tree) = hop(&[("b3", &b3)], "propagation: { b3_output: single }\n").await;
    assert_continues_caller(&tree, &out);
    let client = tree.children(tree.root().unwrap())[0];
    assert_eq!(out["b3"], format!("{TRACE}-{}-1", client.span_id).as_str());
}

#[tokio::test]
async fn b3_multi_in_w3c_and_b3_multi_out() {
    let (out, tree) = hop(
        &[
            ("X-B3-TraceId", TRACE),
            ("X-B3-SpanId", PARENT),
            ("X-B3-Sampled", "1"),
        ],
        "propagation: { b3_output: multi }\n",
    )
    .await;
    assert_continues_caller(&tree, &out);
    let client = tree.children(tree.root().unwrap())[0];
    assert_eq!(out["x-b3-traceid"], TRACE);
    assert_eq!(out["x-b3-spanid"], client.span_id.as_str());
    assert_eq!(out["x-b3-sampled"], "1");
}

#[tokio::test]
async fn ratio_zero_exports_no_new_trace_but_honours_a_sampled_parent() {
    let rx = OtlpReceiver::grpc().await.unwrap();
    let edge = telemetry("gateway", &rx, "sampling: { ratio: 0.0 }\n");

    // No context in: a new trace, not sampled; the decision still travels on.
    let server = edge.server_span(&request(&[]), ServerSpanInfo::default());
    assert!(!server.is_recording());
    let (mut out, ()) = request(&[]).into_parts();
    let client = edge.client_span(server.context(), &mut out, ClientSpanInfo::default());
    assert!(!client.is_recording());
    let tp = out.headers["traceparent"].to_str().unwrap().to_owned();
    assert!(tp.ends_with("-00"), "unsampled flag propagated: {tp}");
    drop((client, server));
    assert!(edge.flush(PATIENCE).await);
    assert!(
        rx.store().is_empty(),
        "nothing exported: {:?}",
        rx.store().spans()
    );
    assert_eq!(edge.stats().exported() + edge.stats().dropped(), 0);

    // A sampled parent wins over the ratio.
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let server = edge.server_span(&request(&[("traceparent", &tp)]), ServerSpanInfo::default());
    assert!(server.is_recording());
    server.end();
    assert!(edge.flush(PATIENCE).await);
    let spans = tokio::time::timeout(PATIENCE, rx.store().wait_for_count(1))
        .await
        .unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].trace_id, TRACE);
    assert_eq!(spans[0].parent_span_id.as_deref(), Some(PARENT));
}

#[tokio::test]
async fn ratio_one_downstream_honours_an_unsampled_caller() {
    let rx = OtlpReceiver::grpc().await.unwrap();
    let sidecar = telemetry("catalog-sidecar", &rx, "sampling: { ratio: 1.0 }\n");
    let tp = format!("00-{TRACE}-{PARENT}-00");
    let server = sidecar.server_span(&request(&[("traceparent", &tp)]), ServerSpanInfo::default());
    assert!(!server.is_recording());
    assert_eq!(
        server.trace_id().unwrap().to_string(),
        TRACE,
        "trace id still known for access logs"
    );
    server.end();
    assert!(sidecar.flush(PATIENCE).await);
    assert!(rx.store().is_empty());
}
