//! One authority per request: the host that chooses the route (and so its
//! policies) is the host the upstream sees, and a request that names its
//! authority ambiguously is refused with `400 ambiguous-authority`
//! (RFC 9112 §3.2, RFC 9113 §8.3.1). Raw HTTP/1.1 bytes and HTTP/2.

mod support;

use http::{Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;

/// `a.example` goes to upstream `a`, `b.example` to upstream `b`.
async fn setup() -> (Upstream, Upstream, TestGateway) {
    let a = echo_upstream("a").await;
    let b = echo_upstream("b").await;
    let gw = TestGateway::start(&config(&format!(
        "upstreams:
  a: {{ endpoints: [{}] }}
  b: {{ endpoints: [{}] }}
routes:
  - name: a
    match: {{ host: a.example, path_prefix: / }}
    upstream: a
  - name: b
    match: {{ host: b.example, path_prefix: / }}
    upstream: b
",
        a.addr, b.addr
    )))
    .await;
    (a, b, gw)
}

#[tokio::test]
async fn ambiguous_http1_authorities_are_refused() {
    let (a, b, gw) = setup().await;
    for request in [
        // The target names one host, Host another.
        &b"GET http://b.example/x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"[..],
        b"GET http://a.example:8080/x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        // Two Host lines, equal or not.
        b"GET /x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        // No Host on HTTP/1.1, absolute-form or not.
        b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET http://a.example/x HTTP/1.1\r\nConnection: close\r\n\r\n",
        // A Host that is not host[:port].
        b"GET /x HTTP/1.1\r\nHost: user@a.example\r\nConnection: close\r\n\r\n",
    ] {
        let r = raw_request(gw.addr(), request).await;
        let shown = String::from_utf8_lossy(request);
        assert_eq!(r.status, 400, "{shown}: {}", r.head);
        assert_eq!(r.problem_slug(), "ambiguous-authority", "{shown}");
    }
    assert_eq!(a.requests() + b.requests(), 0, "nothing was forwarded");
}

#[tokio::test]
async fn one_authority_routes_and_reaches_the_upstream() {
    let (_a, _b, gw) = setup().await;
    // Absolute-form agreeing with Host (case and the default port aside).
    let r = raw_request(
        gw.addr(),
        b"GET http://A.example:80/x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.json()["upstream"], "a");
    assert_eq!(r.seen("host"), ["a.example"]);
    assert_eq!(r.seen("x-forwarded-host"), ["a.example"]);

    let r = raw_request(
        gw.addr(),
        b"GET /x HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.json()["upstream"], "b");
    assert_eq!(r.seen("host"), ["b.example"]);
}

/// Sends `req` on a fresh HTTP/2 (h2c) connection to the gateway.
async fn h2_send(gw: &TestGateway, req: Request<TestBody>) -> Reply {
    let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let resp = within("the h2 response", sender.send_request(req))
        .await
        .expect("h2 request");
    read_reply(resp).await
}

#[tokio::test]
async fn http2_authority_and_host_must_agree() {
    let (a, b, gw) = setup().await;
    let req = Request::get("http://a.example/x")
        .version(Version::HTTP_2)
        .header("host", "b.example")
        .body(empty())
        .unwrap();
    let r = h2_send(&gw, req).await;
    assert_problem(&r, 400, "ambiguous-authority");
    assert_eq!(a.requests() + b.requests(), 0);

    let req = Request::get("http://a.example/x")
        .version(Version::HTTP_2)
        .header("host", "A.example")
        .body(empty())
        .unwrap();
    let r = h2_send(&gw, req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["upstream"], "a");

    let req = Request::get("http://b.example/x")
        .version(Version::HTTP_2)
        .body(empty())
        .unwrap();
    let r = h2_send(&gw, req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["upstream"], "b");
    assert_eq!(r.seen("host"), ["b.example"], ":authority becomes Host");
}
