//! What the gateway adds, no client can remove or replace: the identity
//! headers of the policies, the request id, `X-Forwarded-*` and the route's
//! own request headers reach the upstream as the gateway set them, whatever
//! the client names in `Connection`, sends itself, or puts in trailers.
//! Checked over raw HTTP/1.1 bytes and from an HTTP/2 client, looking at
//! what the upstream received.

mod support;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};
use support::*;

/// sha256("demo-key").
const DEMO_KEY_SHA: &str = "c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c";

/// Both upstreams answer with what they received: headers and trailers.
fn yaml(h1: &Upstream, h2: &Upstream) -> String {
    config(&format!(
        "auth:
  api_keys:
    - {{ name: demo, sha256: {DEMO_KEY_SHA}, scopes: [catalog:read] }}
  scopes_header: x-weir-scopes
upstreams:
  h1: {{ endpoints: [{}] }}
  h2: {{ endpoints: [{}], protocol: http2 }}
routes:
  - name: plain
    match: {{ path_prefix: /p }}
    upstream: h1
    auth: {{ any_of: [api_key], scopes: [catalog:read] }}
    rewrite: {{ request_headers: {{ set: {{ x-weir-route: plain }} }} }}
  - name: h2
    match: {{ path_prefix: /t }}
    upstream: h2
    auth: {{ any_of: [api_key], scopes: [catalog:read] }}
",
        h1.addr, h2.addr
    ))
}

/// `{headers: {name: [values]}, trailers: {name: value}, body_len}`.
async fn report(req: Request<Incoming>) -> Response<TestBody> {
    let (parts, body) = req.into_parts();
    let (body_len, trailers) = match body.collect().await {
        Ok(c) => {
            let t = c.trailers().cloned().unwrap_or_default();
            (c.to_bytes().len(), t)
        }
        Err(_) => (0, HeaderMap::new()),
    };
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let values: Vec<Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        headers.insert(name.as_str().to_owned(), Value::Array(values));
    }
    let trailers: Map<String, Value> = trailers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let doc = json!({ "headers": headers, "trailers": trailers, "body_len": body_len });
    Response::builder()
        .header("content-type", "application/json")
        .body(full(serde_json::to_vec(&doc).unwrap_or_default()))
        .expect("report response")
}

async fn setup() -> (Upstream, Upstream, TestGateway) {
    let h1 = start_upstream(report).await;
    let h2 = start_upstream(report).await;
    let gw = TestGateway::start(&yaml(&h1, &h2)).await;
    (h1, h2, gw)
}

#[tokio::test]
async fn connection_tokens_cannot_strip_what_the_gateway_sets() {
    let (_h1, _h2, gw) = setup().await;
    let r = raw_request(
        gw.addr(),
        b"GET /p/items HTTP/1.1\r\nHost: gw.test\r\nX-Api-Key: demo-key\r\n\
          X-Request-Id: client-chosen\r\nX-Weir-Consumer: mallory\r\n\
          Connection: close, x-weir-consumer, x-weir-scopes, x-request-id, \
          x-forwarded-for, x-forwarded-proto, x-forwarded-host, x-weir-route, traceparent\r\n\r\n",
    )
    .await;
    assert_eq!(
        r.status,
        200,
        "{} {}",
        r.head,
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.seen("x-weir-consumer"), ["apikey:demo"]);
    assert_eq!(r.seen("x-weir-scopes"), ["catalog:read"]);
    assert_eq!(r.seen("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(r.seen("x-forwarded-proto"), ["http"]);
    assert_eq!(r.seen("x-forwarded-host"), ["gw.test"]);
    assert_eq!(r.seen("x-weir-route"), ["plain"]);
    assert!(
        r.seen("x-api-key").is_empty(),
        "the consumed key is not forwarded"
    );
    // The client made its own id hop-by-hop, so the gateway generated one:
    // the upstream sees the id the client is told.
    let id = r.seen("x-request-id");
    assert_eq!(id.len(), 1, "{id:?}");
    assert_ne!(id[0], "client-chosen");
    assert!(
        r.head.contains(&format!("x-request-id: {}", id[0])),
        "{}",
        r.head
    );
}

#[tokio::test]
async fn request_trailers_cannot_carry_gateway_headers() {
    let (_h1, _h2, gw) = setup().await;
    let r = raw_request(
        gw.addr(),
        b"POST /t/items HTTP/1.1\r\nHost: gw.test\r\nX-Api-Key: demo-key\r\n\
          Transfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: x-weir-consumer, x-request-id\r\n\
          Connection: close\r\n\r\n\
          3\r\nabc\r\n0\r\nx-weir-consumer: mallory\r\nx-request-id: forged\r\n\r\n",
    )
    .await;
    assert_eq!(
        r.status,
        200,
        "{} {}",
        r.head,
        String::from_utf8_lossy(&r.body)
    );
    let doc = r.json();
    assert_eq!(doc["body_len"], 3, "{doc}");
    assert_eq!(
        doc["trailers"],
        json!({}),
        "request trailers are dropped: {doc}"
    );
    assert_eq!(r.seen("x-weir-consumer"), ["apikey:demo"]);
}

#[tokio::test]
async fn an_http2_client_cannot_forge_or_trail_gateway_headers() {
    let (_h1, _h2, gw) = setup().await;
    let c = h2c_client();
    for path in ["/p/items", "/t/items"] {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-weir-consumer", "mallory".parse().unwrap());
        trailers.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"hello"))),
            Ok(Frame::trailers(trailers)),
        ];
        let req = Request::post(gw.url(path))
            .header("x-api-key", "demo-key")
            .header("x-weir-consumer", "mallory")
            .header("x-weir-scopes", "admin")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "forged.example")
            .header("te", "trailers")
            .body(StreamBody::new(stream::iter(frames)).boxed_unsync())
            .unwrap();
        let r = send_with(&c, req).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let doc = r.json();
        assert_eq!(doc["body_len"], 5, "{path}: {doc}");
        assert_eq!(doc["trailers"], json!({}), "{path}: {doc}");
        assert_eq!(r.seen("x-weir-consumer"), ["apikey:demo"], "{path}");
        assert_eq!(r.seen("x-weir-scopes"), ["catalog:read"], "{path}");
        assert_eq!(r.seen("x-forwarded-proto"), ["http"], "{path}");
        assert_eq!(
            r.seen("x-forwarded-host"),
            [gw.addr().to_string()],
            "{path}"
        );
        assert_eq!(r.seen("x-request-id"), [r.header("x-request-id").unwrap()]);
    }
}
