//! Client errors are client errors: a malformed request body (chunk sizes,
//! chunk extensions, bytes where the framing wants others) is answered
//! `400 invalid-request-body`, never `502`, even though it surfaces while
//! the gateway is sending to the upstream, over HTTP/1.1 or HTTP/2 (and a
//! body past the limit stays `413` on both); an API version value that names
//! no version is `400 invalid-api-version`, not a silent default.

mod support;

use support::*;

async fn setup() -> (Upstream, TestGateway) {
    let up = echo_upstream("svc").await;
    let gw = TestGateway::start(&config(&format!(
        "upstreams:
  svc: {{ endpoints: [{}] }}
  svc-h2: {{ endpoints: [{0}], protocol: http2 }}
routes:
  - name: h2
    match: {{ path_prefix: /h2 }}
    upstream: svc-h2
    limits: {{ max_body_bytes: 64 }}
  - name: products
    match: {{ path_prefix: /products }}
    version: 1
    upstream: svc
  - name: rest
    match: {{ path_prefix: / }}
    upstream: svc
",
        up.addr
    )))
    .await;
    (up, gw)
}

const HEAD: &[u8] =
    b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
/// The same, to an upstream spoken to in HTTP/2.
const HEAD_H2: &[u8] =
    b"POST /h2/upload HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn malformed_chunked_bodies_are_400_not_502() {
    let (_up, gw) = setup().await;
    let long_extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a=b;".repeat(6_000));
    let bodies: [(&str, Vec<u8>); 3] = [
        (
            "bad chunk size",
            b"5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "chunk extensions over the limit",
            long_extension.into_bytes(),
        ),
        (
            "data not followed by CRLF",
            b"5\r\nhelloXX0\r\n\r\n".to_vec(),
        ),
    ];
    for ((what, body), head) in bodies.iter().flat_map(|b| [(b, HEAD), (b, HEAD_H2)]) {
        let mut request = head.to_vec();
        request.extend_from_slice(body);
        let r = raw_request(gw.addr(), &request).await;
        assert_eq!(
            r.status,
            400,
            "{what}: {} {}",
            r.head,
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.problem_slug(), "invalid-request-body", "{what}");
        assert!(r.json()["request_id"].is_string(), "{what}");
    }
    let metrics = gw.metrics().await;
    assert!(
        !metrics.contains("weir_upstream_errors_total{"),
        "a client's body is not counted against the upstream:\n{metrics}"
    );
}

#[tokio::test]
async fn a_body_past_the_limit_is_413_on_an_http2_upstream_too() {
    let (_up, gw) = setup().await;
    let mut request = HEAD_H2.to_vec();
    request.extend_from_slice(format!("64\r\n{}\r\n0\r\n\r\n", "x".repeat(100)).as_bytes());
    let r = raw_request(gw.addr(), &request).await;
    assert_eq!(r.status, 413, "{}", r.head);
    assert_eq!(r.problem_slug(), "payload-too-large");
}

#[tokio::test]
async fn a_well_formed_chunked_body_still_passes() {
    let (_up, gw) = setup().await;
    let mut request = HEAD.to_vec();
    request.extend_from_slice(b"5;name=value\r\nhello\r\n0\r\n\r\n");
    let r = raw_request(gw.addr(), &request).await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.json()["body_len"], 5);
    let mut request = HEAD_H2.to_vec();
    request.extend_from_slice(b"5;name=value\r\nhello\r\n0\r\n\r\n");
    let r = raw_request(gw.addr(), &request).await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.json()["body_len"], 5);
}

#[tokio::test]
async fn unparseable_api_versions_are_400() {
    let (up, gw) = setup().await;
    for (name, value) in [
        ("api-version", "abc"),
        ("api-version", "0"),
        ("api-version", ""),
        ("accept-version", "1.x"),
        ("accept", "application/vnd.weir.vlatest+json"),
    ] {
        let r = get_with(&gw.url("/products"), &[(name, value)]).await;
        let doc = assert_problem(&r, 400, "invalid-api-version");
        assert!(
            doc["detail"].as_str().unwrap_or("").contains(name),
            "{name}: {doc}"
        );
    }
    assert_eq!(up.requests(), 0);

    // Well-formed values are served, and a version in the path decides
    // before any header is read.
    let r = get_with(&gw.url("/products"), &[("accept-version", "v1")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get_with(&gw.url("/v1/products"), &[("api-version", "abc")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
}
