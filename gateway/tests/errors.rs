//! Every error the gateway generates itself is an RFC 9457 problem document
//! (`application/problem+json`) with a stable `type`, the `status` and the
//! request id that the response also echoes.

mod support;

use bytes::Bytes;
use futures_util::stream;
use http::Request;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use support::*;

fn yaml(upstreams: &str, routes: &str) -> String {
    config(&format!("upstreams:\n{upstreams}routes:\n{routes}"))
}

#[tokio::test]
async fn not_found_method_not_allowed_and_gone() {
    let up = echo_upstream("echo").await;
    let gw = TestGateway::start(&yaml(
        &format!("  echo: {{ endpoints: [{}] }}\n", up.addr),
        "  - name: read\n    match: { path: /items, methods: [GET, PUT] }\n    upstream: echo\n\
         \x20 - name: write\n    match: { path: /items, methods: [POST] }\n    upstream: echo\n\
         \x20 - name: retired\n    match: { path_prefix: /old }\n    upstream: echo\n    deprecated: { sunset: 2001-01-01T00:00:00Z }\n",
    ))
    .await;

    let r = get_with(&gw.url("/nothing/here"), &[("x-request-id", "req-404")]).await;
    let doc = assert_problem(&r, 404, "route-not-found");
    assert_eq!(doc["request_id"], "req-404");

    let r = send(Request::delete(gw.url("/items")).body(empty()).unwrap()).await;
    assert_problem(&r, 405, "method-not-allowed");
    let allow: Vec<&str> = r.header("allow").expect("Allow").split(", ").collect();
    for m in ["GET", "HEAD", "POST", "PUT"] {
        assert!(allow.contains(&m), "{m} missing from Allow: {allow:?}");
    }
    assert!(!allow.contains(&"DELETE"));

    let r = get(&gw.url("/old/thing")).await;
    assert_problem(&r, 410, "api-version-sunset");
    assert_eq!(up.requests(), 0, "none of these reached the upstream");
}

#[tokio::test]
async fn payload_too_large_up_front_and_while_streaming() {
    let up = echo_upstream("echo").await;
    let gw = TestGateway::start(&yaml(
        &format!("  echo: {{ endpoints: [{}] }}\n", up.addr),
        "  - name: small\n    match: { path_prefix: /upload }\n    upstream: echo\n    limits: { max_body_bytes: 1KiB }\n",
    ))
    .await;

    // Within the limit.
    let r = send(
        Request::post(gw.url("/upload"))
            .body(full(vec![1u8; 1024]))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 1024);

    // Content-Length over the limit: refused before anything is forwarded.
    let before = up.requests();
    let r = send(
        Request::post(gw.url("/upload"))
            .body(full(vec![1u8; 4096]))
            .unwrap(),
    )
    .await;
    let doc = assert_problem(&r, 413, "payload-too-large");
    assert!(
        doc["detail"].as_str().unwrap_or("").contains("1024"),
        "{doc}"
    );
    assert_eq!(up.requests(), before);

    // Chunked, no length: the limit trips while the body streams.
    let chunks = (0..8).map(|_| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![2u8; 512]))));
    let body = StreamBody::new(stream::iter(chunks)).boxed_unsync();
    let r = send(Request::post(gw.url("/upload")).body(body).unwrap()).await;
    assert_problem(&r, 413, "payload-too-large");
}

#[tokio::test]
async fn bad_gateway_when_the_upstream_refuses() {
    let gw = TestGateway::start(&yaml(
        &format!("  gone: {{ endpoints: [{}] }}\n", closed_port()),
        "  - name: r\n    match: { path_prefix: / }\n    upstream: gone\n",
    ))
    .await;
    let r = get(&gw.url("/x")).await;
    assert_problem(&r, 502, "upstream-connect-failed");
}

#[tokio::test]
async fn gateway_timeout_on_a_hung_upstream() {
    let hung = start_upstream(|_req| async move {
        std::future::pending::<()>().await;
        text_response(200, "never")
    })
    .await;
    let gw = TestGateway::start(&yaml(
        &format!("  hung: {{ endpoints: [{}] }}\n", hung.addr),
        "  - name: slow\n    match: { path_prefix: / }\n    upstream: hung\n    timeout: 200ms\n",
    ))
    .await;
    let r = get(&gw.url("/wait")).await;
    assert_problem(&r, 504, "upstream-timeout");
    assert_eq!(hung.requests(), 1, "the request did reach the upstream");
}

#[tokio::test]
async fn service_unavailable_when_no_endpoint_is_healthy() {
    let sick = start_upstream(|req| async move {
        if req.uri().path() == "/health" {
            text_response(500, "sick")
        } else {
            text_response(200, "fine")
        }
    })
    .await;
    let gw = TestGateway::start(&yaml(
        &format!(
            "  sick: {{ endpoints: [{}], health_check: {{ path: /health, interval: 50ms, timeout: 1s, healthy: 1, unhealthy: 1 }} }}\n",
            sick.addr
        ),
        "  - name: r\n    match: { path_prefix: / }\n    upstream: sick\n",
    ))
    .await;
    let url = gw.url("/x");
    wait_until("the endpoint is marked unhealthy", || {
        let url = url.clone();
        async move { get(&url).await.status == 503 }
    })
    .await;
    let r = get(&url).await;
    assert_problem(&r, 503, "no-healthy-upstream");
}

#[tokio::test]
async fn bad_gateway_when_the_upstream_hangs_up() {
    // Accepts, reads the request, and closes without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rude = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut tcp, &mut buf).await;
        }
    });
    let gw = TestGateway::start(&yaml(
        &format!("  rude: {{ endpoints: [{addr}] }}\n"),
        "  - name: r\n    match: { path_prefix: / }\n    upstream: rude\n",
    ))
    .await;
    for _ in 0..3 {
        let r = get(&gw.url("/x")).await;
        assert_problem(&r, 502, "upstream-error");
    }
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "weir_upstream_errors_total{upstream=\"rude\",kind=\"upstream-error\"}"
        ),
        Some(3.0),
        "{m}"
    );
    rude.abort();
}

#[tokio::test]
async fn dot_segments_are_refused() {
    let up = echo_upstream("echo").await;
    let gw = TestGateway::start(&yaml(
        &format!("  echo: {{ endpoints: [{}] }}\n", up.addr),
        "  - name: public\n    match: { path_prefix: /public }\n    upstream: echo\n",
    ))
    .await;
    // Sent verbatim (hyper's connection-level client does not resolve them).
    for path in [
        "/public/../admin",
        "/public/./x",
        "/public/%2e%2E/admin",
        "/public/.%2e",
        "/public/%2E",
    ] {
        let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", "gw")
            .body(empty())
            .unwrap();
        let r = read_reply(sender.send_request(req).await.unwrap()).await;
        assert_problem(&r, 400, "invalid-path");
    }
    assert_eq!(up.requests(), 0, "nothing reached the upstream");
    // Dots inside a segment are ordinary.
    for path in [
        "/public/a.b",
        "/public/...",
        "/public/.well-known",
        "/public/%2e%2e%2e",
    ] {
        let r = get(&gw.url(path)).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.json()["uri"], path);
    }
}
