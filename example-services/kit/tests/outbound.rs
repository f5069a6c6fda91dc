//! The outbound client through a proxy: it dials the proxy, sends the
//! absolute-form target with the logical name as Host, and carries the trace
//! context of the incoming request.

use std::time::Duration;

use axum::http::{HeaderMap, Method};
use service_kit::Outbound;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn one_request(listener: TcpListener) -> String {
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before the request head");
        head.extend_from_slice(&buf[..n]);
    }
    socket
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}")
        .await
        .unwrap();
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn proxied_requests_use_absolute_form_and_propagate_trace_context() {
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = proxy.local_addr().unwrap();
    let server = tokio::spawn(one_request(proxy));

    let client = Outbound::new(Some(addr), Duration::from_secs(5));
    let mut incoming = HeaderMap::new();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    incoming.insert("traceparent", traceparent.parse().unwrap());
    incoming.insert("x-request-id", "req-7".parse().unwrap());
    incoming.insert("authorization", "Bearer not-forwarded".parse().unwrap());
    let response = client
        .send_json(
            Method::POST,
            "http://catalog/v1/reservations",
            &incoming,
            &[("idempotency-key", "k")],
            Some(&serde_json::json!({"a": 1})),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.json::<serde_json::Value>().unwrap()["ok"], true);

    let head = server.await.unwrap().to_lowercase();
    assert!(
        head.starts_with("post http://catalog/v1/reservations http/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nhost: catalog\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\ntraceparent: {traceparent}\r\n")),
        "{head}"
    );
    assert!(head.contains("\r\nx-request-id: req-7\r\n"), "{head}");
    assert!(head.contains("\r\nidempotency-key: k\r\n"), "{head}");
    assert!(!head.contains("authorization"), "{head}");
}

#[tokio::test]
async fn direct_requests_use_origin_form() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = upstream.local_addr().unwrap();
    let server = tokio::spawn(one_request(upstream));
    let client = Outbound::new(None, Duration::from_secs(5));
    let url = format!("http://{addr}/v1/products");
    let response = client
        .send_json::<()>(Method::GET, &url, &HeaderMap::new(), &[], None)
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let head = server.await.unwrap().to_lowercase();
    assert!(head.starts_with("get /v1/products http/1.1\r\n"), "{head}");
}

#[tokio::test]
async fn a_silent_peer_times_out() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (socket, _) = silent.accept().await.unwrap();
        // Keep the connection open without answering until the client gives up.
        let mut socket = socket;
        let mut buf = [0u8; 1024];
        while socket.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
    });
    let client = Outbound::new(None, Duration::from_millis(100));
    let error = client
        .send_json::<()>(
            Method::GET,
            &format!("http://{addr}/"),
            &HeaderMap::new(),
            &[],
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, service_kit::OutboundError::Timeout { .. }),
        "{error:?}"
    );
    hold.abort();
}

/// The `traceparent` header line of a request head (lower-cased).
fn traceparent_of(head: &str) -> Option<&str> {
    head.split("\r\n")
        .find_map(|line| line.strip_prefix("traceparent: "))
}

#[tokio::test]
async fn with_tracing_a_call_is_a_client_span_under_the_current_one() {
    let (telemetry, recorder) = service_kit::testing::recording_telemetry("order");
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = proxy.local_addr().unwrap();
    let server = tokio::spawn(one_request(proxy));
    let client =
        Outbound::new(Some(addr), Duration::from_secs(5)).with_telemetry(telemetry.clone());
    let mut incoming = HeaderMap::new();
    incoming.insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            .parse()
            .unwrap(),
    );
    incoming.insert("x-request-id", "req-9".parse().unwrap());

    let handler = telemetry.span("handler", vec![]);
    let response = telemetry
        .in_span(
            &handler,
            client.send_json_attempt::<()>(
                Method::POST,
                "http://payment/v1/payments/p-1/refund",
                &incoming,
                &[],
                None,
                2,
            ),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    drop(handler);
    let head = server.await.unwrap().to_lowercase();

    let spans = recorder.spans().await;
    let handler = spans.iter().find(|s| s.name == "handler").unwrap();
    let call = spans.iter().find(|s| s.kind == "client").unwrap();
    assert_eq!(
        call.parent_span_id.as_deref(),
        Some(handler.span_id.as_str())
    );
    assert_eq!(call.service, "order");
    assert_eq!(call.name, "POST");
    assert_eq!(call.attr("weir.upstream"), Some("payment"));
    assert_eq!(call.attr("server.address"), Some("payment"));
    assert_eq!(call.attr("weir.retry.attempt"), Some("2"));
    assert_eq!(call.attr("http.response.status_code"), Some("200"));
    // The callee's parent is the CLIENT span, in the current trace (not the
    // one the copied header named).
    assert_eq!(
        traceparent_of(&head),
        Some(format!("00-{}-{}-01", call.trace_id, call.span_id).as_str()),
        "{head}"
    );
    assert!(head.contains("\r\nx-request-id: req-9\r\n"), "{head}");
}

#[tokio::test]
async fn with_tracing_but_outside_a_request_headers_pass_through_and_no_span_is_made() {
    let (telemetry, recorder) = service_kit::testing::recording_telemetry("order");
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = upstream.local_addr().unwrap();
    let server = tokio::spawn(one_request(upstream));
    let client = Outbound::new(None, Duration::from_secs(5)).with_telemetry(telemetry);
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut incoming = HeaderMap::new();
    incoming.insert("traceparent", traceparent.parse().unwrap());
    client
        .send_json::<()>(
            Method::GET,
            &format!("http://{addr}/"),
            &incoming,
            &[],
            None,
        )
        .await
        .unwrap();
    let head = server.await.unwrap().to_lowercase();
    assert_eq!(traceparent_of(&head), Some(traceparent), "{head}");
    assert!(recorder.spans().await.is_empty());
}

#[tokio::test]
async fn a_failed_call_marks_its_span() {
    let (telemetry, recorder) = service_kit::testing::recording_telemetry("order");
    // A port with nobody listening: bind, note, close.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let client = Outbound::new(None, Duration::from_secs(5)).with_telemetry(telemetry.clone());
    let handler = telemetry.span("handler", vec![]);
    let result = telemetry
        .in_span(
            &handler,
            client.send_json::<()>(
                Method::GET,
                &format!("http://{addr}/"),
                &HeaderMap::new(),
                &[],
                None,
            ),
        )
        .await;
    assert!(result.is_err());
    drop(handler);
    let spans = recorder.spans().await;
    let call = spans.iter().find(|s| s.kind == "client").unwrap();
    assert!(call.error);
    assert_eq!(call.attr("error.type"), Some("connect_error"));
}
