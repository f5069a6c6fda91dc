//! HTTP/2 at both edges: h2c with prior knowledge from a client, HTTP/2 to
//! an upstream configured `protocol: http2` with gRPC-style trailers passing
//! through to the client, and `protocol: auto` following the client's
//! version. (TLS with ALPN is in `tls.rs`.)

mod support;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response, Version};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use support::*;

fn echo_yaml(listeners: &str, up: &Upstream) -> String {
    format!(
        "listeners:\n{listeners}admin:\n  address: 127.0.0.1:0\nupstreams:\n  echo: {{ endpoints: [{}] }}\nroutes:\n  - name: echo\n    match: {{ path_prefix: / }}\n    upstream: echo\n",
        up.addr
    )
}

#[tokio::test]
async fn h2c_with_prior_knowledge() {
    let up = echo_upstream("echo").await;
    let gw = TestGateway::start(&echo_yaml(
        "  - name: public\n    address: 127.0.0.1:0\n",
        &up,
    ))
    .await;
    let c = h2c_client();
    // Several concurrent streams on the one HTTP/2 connection.
    let replies = futures_util::future::join_all((0..8).map(|i| {
        let req = Request::get(gw.url(&format!("/h2/{i}")))
            .body(empty())
            .unwrap();
        send_with(&c, req)
    }))
    .await;
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.status, 200);
        assert_eq!(r.version, Version::HTTP_2);
        let doc = r.json();
        assert_eq!(doc["uri"], format!("/h2/{i}"));
        assert_eq!(
            doc["version"], "HTTP/1.1",
            "an http1 upstream is spoken to in HTTP/1.1"
        );
        assert_eq!(
            r.seen("host"),
            [gw.addr().to_string()],
            ":authority becomes Host"
        );
        assert_eq!(r.seen("x-forwarded-proto"), ["http"]);
    }
}

/// A gRPC-shaped upstream: answers every call with one message and the
/// `grpc-status` in trailers, reporting what it received in headers.
async fn grpc_upstream() -> Upstream {
    start_upstream(|req| async move {
        let version = format!("{:?}", req.version());
        let te = req
            .headers()
            .get("te")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let path = req.uri().path().to_owned();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let mut trailers = HeaderMap::new();
        if path.ends_with("/Fail") {
            trailers.insert("grpc-status", "5".parse().unwrap());
            trailers.insert("grpc-message", "not found".parse().unwrap());
        } else {
            trailers.insert("grpc-status", "0".parse().unwrap());
        }
        trailers.insert("x-echo-len", body.len().to_string().parse().unwrap());
        let frames = vec![
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi"))),
            Ok(Frame::trailers(trailers)),
        ];
        Response::builder()
            .header("content-type", "application/grpc")
            .header("x-upstream-version", version)
            .header("x-upstream-te", te)
            .body(StreamBody::new(stream::iter(frames)).boxed_unsync())
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn grpc_trailers_pass_through_http2_upstream() {
    let up = grpc_upstream().await;
    let yaml = config(&format!(
        "upstreams:\n  grpc: {{ endpoints: [{}], protocol: http2 }}\nroutes:\n  - name: grpc\n    match: {{ path_prefix: /weir.Test }}\n    upstream: grpc\n",
        up.addr
    ));
    let gw = TestGateway::start(&yaml).await;
    let c = h2c_client();
    for (method, status) in [("Ok", "0"), ("Fail", "5")] {
        let req = Request::post(gw.url(&format!("/weir.Test/{method}")))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(full(&b"\0\0\0\0\x05hello"[..]))
            .unwrap();
        let r = send_with(&c, req).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-upstream-version"),
            Some("HTTP/2.0"),
            "the upstream was spoken to in HTTP/2"
        );
        assert_eq!(r.header("x-upstream-te"), Some("trailers"));
        assert_eq!(&r.body[..], b"\0\0\0\0\x02hi");
        let trailers = r.trailers.as_ref().expect("trailers reach the client");
        assert_eq!(trailers["grpc-status"], status);
        assert_eq!(
            trailers["x-echo-len"], "10",
            "the request body arrived whole"
        );
        if status == "5" {
            assert_eq!(trailers["grpc-message"], "not found");
        }
    }
    // One upstream HTTP/2 connection carried both calls.
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn auto_protocol_follows_the_client() {
    let up = echo_upstream("echo").await;
    let yaml = config(&format!(
        "upstreams:\n  echo: {{ endpoints: [{}], protocol: auto }}\nroutes:\n  - name: echo\n    match: {{ path_prefix: / }}\n    upstream: echo\n",
        up.addr
    ));
    let gw = TestGateway::start(&yaml).await;
    let r = get(&gw.url("/h1")).await;
    assert_eq!(r.json()["version"], "HTTP/1.1");
    let r = send_with(
        &h2c_client(),
        Request::get(gw.url("/h2")).body(empty()).unwrap(),
    )
    .await;
    assert_eq!(r.version, Version::HTTP_2);
    assert_eq!(r.json()["version"], "HTTP/2.0");
    // Over HTTP/2 the upstream sees the absolute form (`:scheme`, `:authority`).
    let uri: http::Uri = r.json()["uri"].as_str().unwrap().parse().unwrap();
    assert_eq!(uri.path(), "/h2");
}
