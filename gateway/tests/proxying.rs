//! What a request and its response look like on the far side of the
//! gateway: hop-by-hop headers gone, `X-Forwarded-*` added, request ids kept,
//! generated and echoed, and upstream connections reused.

mod support;

use http::{Request, Response};
use hyper_util::rt::TokioIo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn echo_gateway() -> (TestGateway, Upstream) {
    let up = echo_upstream("echo").await;
    let yaml = config(&format!(
        "upstreams:\n  echo: {{ endpoints: [{}] }}\nroutes:\n  - name: echo\n    match: {{ path_prefix: / }}\n    upstream: echo\n",
        up.addr
    ));
    (TestGateway::start(&yaml).await, up)
}

/// One request on a fresh HTTP/1.1 connection with exactly these headers
/// (hyper's connection-level client adds none of its own).
async fn raw_h1(addr: std::net::SocketAddr, req: Request<TestBody>) -> Reply {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.expect("response");
    read_reply(resp).await
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    // The upstream answers with hop-by-hop headers of its own.
    let up = start_upstream(|req| async move {
        let mut resp: Response<TestBody> = echo_response("echo", req).await;
        let h = resp.headers_mut();
        h.insert("connection", "x-up-secret".parse().unwrap());
        h.insert("x-up-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("proxy-authenticate", "Basic".parse().unwrap());
        h.insert("x-up-normal", "kept".parse().unwrap());
        resp
    })
    .await;
    let yaml = config(&format!(
        "upstreams:\n  echo: {{ endpoints: [{}] }}\nroutes:\n  - name: echo\n    match: {{ path_prefix: / }}\n    upstream: echo\n",
        up.addr
    ));
    let gw = TestGateway::start(&yaml).await;
    // Premise: straight from the upstream, the client would see them.
    let direct = raw_h1(
        up.addr,
        Request::get("/").header("host", "x").body(empty()).unwrap(),
    )
    .await;
    assert_eq!(direct.header("x-up-secret"), Some("1"));
    assert_eq!(direct.header("proxy-authenticate"), Some("Basic"));

    let req = Request::get("/hop")
        .header("host", "example.test")
        .header("connection", "keep-alive, x-hop-secret")
        .header("keep-alive", "timeout=5")
        .header("x-hop-secret", "1")
        .header("proxy-authorization", "Basic Zm9v")
        .header("te", "gzip")
        .header("x-normal", "kept")
        .body(empty())
        .unwrap();
    let r = raw_h1(gw.addr(), req).await;
    assert_eq!(r.status, 200);
    for name in [
        "connection",
        "keep-alive",
        "x-hop-secret",
        "proxy-authorization",
        "te",
        "upgrade",
        "trailer",
    ] {
        assert!(
            r.seen(name).is_empty(),
            "{name} reached the upstream: {:?}",
            r.seen(name)
        );
    }
    assert_eq!(r.seen("x-normal"), ["kept"]);
    assert_eq!(r.seen("host"), ["example.test"]);
    for name in ["x-up-secret", "keep-alive", "proxy-authenticate"] {
        assert!(r.header(name).is_none(), "{name} reached the client");
    }
    assert_eq!(r.header("x-up-normal"), Some("kept"));
}

#[tokio::test]
async fn te_trailers_survives_for_grpc() {
    let (gw, _up) = echo_gateway().await;
    let r = get_with(&gw.url("/t"), &[("te", "trailers")]).await;
    assert_eq!(r.seen("te"), ["trailers"]);
}

#[tokio::test]
async fn forwarded_headers_record_the_hop() {
    let (gw, _up) = echo_gateway().await;
    let r = get_with(
        &gw.url("/f"),
        &[
            ("host", "shop.example.test"),
            ("x-forwarded-for", "203.0.113.9"),
        ],
    )
    .await;
    assert_eq!(r.seen("x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
    assert_eq!(r.seen("x-forwarded-proto"), ["http"]);
    assert_eq!(r.seen("x-forwarded-host"), ["shop.example.test"]);
    assert_eq!(
        r.seen("host"),
        ["shop.example.test"],
        "the client's Host is kept"
    );

    let r = get_with(&gw.url("/f"), &[("host", "shop.example.test")]).await;
    assert_eq!(r.seen("x-forwarded-for"), ["127.0.0.1"]);
}

#[tokio::test]
async fn request_id_is_kept_generated_and_echoed() {
    let (gw, _up) = echo_gateway().await;

    let r = get_with(&gw.url("/id"), &[("x-request-id", "client-id-123")]).await;
    assert_eq!(r.seen("x-request-id"), ["client-id-123"]);
    assert_eq!(r.header("x-request-id"), Some("client-id-123"));

    let mut generated = Vec::new();
    for sent in [None, Some("has spaces and !"), Some(&*"x".repeat(300))] {
        let headers: Vec<(&str, &str)> = sent.iter().map(|v| ("x-request-id", *v)).collect();
        let r = get_with(&gw.url("/id"), &headers).await;
        let echoed = r
            .header("x-request-id")
            .expect("an id is always echoed")
            .to_owned();
        assert_eq!(
            echoed.len(),
            36,
            "a generated UUID-shaped id replaces {sent:?}: {echoed}"
        );
        assert_eq!(
            r.seen("x-request-id"),
            std::slice::from_ref(&echoed),
            "the upstream sees the same id"
        );
        generated.push(echoed);
    }
    generated.dedup();
    assert_eq!(generated.len(), 3, "ids differ per request");
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let (gw, up) = echo_gateway().await;
    let c = client();
    for i in 0..20 {
        let r = send_with(
            &c,
            Request::get(gw.url(&format!("/ka/{i}")))
                .body(empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    // Other clients' requests share the same upstream pool.
    for i in 0..10 {
        assert_eq!(get(&gw.url(&format!("/other/{i}"))).await.status, 200);
    }
    assert_eq!(up.requests(), 30);
    assert!(
        up.connections() < 5,
        "30 sequential requests used {} upstream connections",
        up.connections()
    );
}

#[tokio::test]
async fn head_expect_continue_and_h2_uploads() {
    let (gw, _up) = echo_gateway().await;

    let r = send(Request::head(gw.url("/head")).body(empty()).unwrap()).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert!(
        r.header("content-length").is_some_and(|l| l != "0"),
        "{:?}",
        r.headers
    );

    // Expect: 100-continue: the gateway asks for the body, then forwards it.
    let mut tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    tcp.write_all(
        b"POST /expect HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = within("100 Continue", tcp.read(&mut buf)).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    tcp.write_all(b"hello").await.unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("\"body_len\":5") {
        let n = within("the response", tcp.read(&mut buf)).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&got).contains("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );

    // An HTTP/2 client's streamed upload reaches an HTTP/1.1 upstream whole.
    let body =
        http_body_util::StreamBody::new(futures_util::stream::iter((0..16).map(|_| {
            Ok::<_, BoxError>(http_body::Frame::data(bytes::Bytes::from(vec![7u8; 1000])))
        })));
    let req = Request::post(gw.url("/h2-upload"))
        .body(http_body_util::BodyExt::boxed_unsync(body))
        .unwrap();
    let r = send_with(&h2c_client(), req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 16_000);
}
