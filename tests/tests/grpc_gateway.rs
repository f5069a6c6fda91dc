//! gRPC through the real gateway with a real tonic client and server: unary
//! and server-streaming calls with their trailers, deadlines, a cancelled
//! stream, refusals in gRPC terms, and the call's status on metrics and the
//! access line.

use std::time::Duration;

use e2e::TempDir;
use e2e::grpc_probe::{Call, ProbeClient, ProbeServer, call};
use proxy_core::shutdown;
use tonic::{Code, Request};

const PATIENCE: Duration = Duration::from_secs(20);

struct Gw {
    url: String,
    admin: String,
    trigger: shutdown::ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

impl Gw {
    async fn start(up: &ProbeServer, extra_route: &str, top: &str) -> Gw {
        Self::start_at(up.addr, extra_route, top).await
    }

    async fn start_at(up: std::net::SocketAddr, extra_route: &str, top: &str) -> Gw {
        let dir = TempDir::new("gw-grpc").unwrap();
        let config = format!(
            r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  probe: {{ endpoints: ["{up}"], protocol: http2 }}
{top}
routes:
  - name: probe
    match: {{ grpc: {{ service: weir.test.v1.Probe }} }}
    upstream: probe
{extra_route}
shutdown: {{ drain: 1s }}
"#,
        );
        let path = dir.write("gateway.yaml", &config).unwrap();
        let gw = gateway::Gateway::bind(path, |_| None)
            .await
            .expect("gateway starts");
        let addrs = gw.local_addrs();
        let (trigger, signal) = shutdown::channel();
        let task = tokio::spawn(gw.serve(signal));
        Gw {
            url: format!("http://{}", addrs["public"]),
            admin: format!("http://{}", addrs["admin"]),
            trigger,
            task,
            _dir: dir,
        }
    }

    async fn client(&self) -> ProbeClient {
        ProbeClient::connect(self.url.clone()).await
    }

    async fn metrics(&self) -> String {
        e2e::HttpClient::default()
            .get(&format!("{}/metrics", self.admin), &[])
            .await
            .unwrap()
            .text()
    }

    async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("gateway drains")
            .expect("gateway task");
    }
}

#[tokio::test]
async fn unary_and_streaming_calls_keep_their_messages_and_trailers() {
    let up = ProbeServer::start().await;
    let gw = Gw::start(&up, "    timeout: 10s", "").await;
    let mut c = gw.client().await;

    let reply = c.unary(Request::new(call("hello"))).await.unwrap();
    assert_eq!(reply.get_ref().text, "hello");

    // A failed call is HTTP 200: its status and message come in trailers.
    let err = c
        .unary(Request::new(Call {
            code: Code::NotFound as u32,
            ..call("x")
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "unary asked for NotFound");

    let mut stream = c
        .stream(Request::new(Call {
            count: 3,
            code: Code::ResourceExhausted as u32,
            ..call("s")
        }))
        .await
        .unwrap()
        .into_inner();
    let mut seqs = Vec::new();
    let end = loop {
        match stream.message().await {
            Ok(Some(r)) => seqs.push(r.seq),
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    assert_eq!(seqs, [0, 1, 2]);
    assert_eq!(end.map(|s| s.code()), Some(Code::ResourceExhausted));

    let metrics = gw.metrics().await;
    for code in ["OK", "NOT_FOUND", "RESOURCE_EXHAUSTED"] {
        let line = format!("weir_grpc_responses_total{{route=\"probe\",grpc_status=\"{code}\"}} 1");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_route_timeout_caps_the_call_deadline_and_answers_deadline_exceeded() {
    let up = ProbeServer::start_without_deadlines().await;
    let gw = Gw::start(&up, "    timeout: 200ms", "").await;
    let mut c = gw.client().await;
    let mut req = Request::new(Call {
        delay_ms: 60_000,
        ..call("slow")
    });
    // The client would wait a minute; the route allows 200ms.
    req.set_timeout(Duration::from_secs(60));
    let err = c.unary(req).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert_eq!(
        err.metadata().get("x-weir-error").unwrap(),
        "upstream-timeout"
    );
    // The upstream was told the shorter deadline.
    assert_eq!(up.state.timeouts(), [Some("200000u".to_owned())]);
    gw.stop().await;
}

#[tokio::test]
async fn the_clients_grpc_timeout_is_honoured_when_shorter() {
    let up = ProbeServer::start_without_deadlines().await;
    let gw = Gw::start(&up, "    timeout: 60s", "").await;
    // A raw HTTP/2 call, so no client-side timer races the gateway's.
    let body = grpc_frame(&prost::Message::encode_to_vec(&Call {
        delay_ms: 60_000,
        ..call("slow")
    }));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(format!("{}/weir.test.v1.Probe/Unary", gw.url))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "150m")
        .body(http_body_util::Full::new(body))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    assert_eq!(resp.headers()["grpc-status"], "4");
    assert_eq!(resp.headers()["x-weir-error"], "upstream-timeout");
    assert_eq!(up.state.timeouts(), [Some("150m".to_owned())]);
    gw.stop().await;
}

#[tokio::test]
async fn a_cancelled_stream_reaches_the_server() {
    let up = ProbeServer::start().await;
    let gw = Gw::start(&up, "", "").await;
    let mut c = gw.client().await;
    let mut stream = c
        .stream(Request::new(Call {
            count: 1000,
            delay_ms: 20,
            ..call("long")
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.message().await.unwrap().unwrap().seq, 0);
    drop(stream);
    // The gateway resets the upstream stream: the server's stream is dropped.
    tokio::time::timeout(PATIENCE, up.state.streams_dropped(1))
        .await
        .expect("the cancellation reaches the server");
    gw.stop().await;
}

const AUTH: &str = r#"
auth:
  api_keys:
    - name: reader
      sha256: c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c
      scopes: [probe:read]
rate_limits:
  backend: local
  policies:
    once: { rate: 1, per: 1m, burst: 1, key: [] }
"#;

#[tokio::test]
async fn refusals_carry_the_grpc_status_a_client_understands() {
    let up = ProbeServer::start().await;
    let routes = r#"    auth: { any_of: [api_key], scopes: [probe:read] }
    rate_limit: [once]
  - name: admin
    match: { grpc: { service: weir.test.v1.Admin } }
    upstream: probe
    auth: { any_of: [api_key], scopes: [probe:admin] }"#;
    let gw = Gw::start(&up, routes, AUTH).await;
    let mut c = gw.client().await;

    let err = c.unary(Request::new(call("anon"))).await.unwrap_err();
    // The code and message are the gateway's grpc-status and grpc-message
    // (a client mapping a bare HTTP 401 would say "HTTP status …").
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(err.metadata().get("x-weir-error").unwrap(), "unauthorized");
    assert!(!err.message().starts_with("HTTP status"), "{err:?}");

    let keyed = |text: &str| {
        let mut r = Request::new(call(text));
        r.metadata_mut()
            .insert("x-api-key", "demo-key".parse().unwrap());
        r
    };
    assert_eq!(c.unary(keyed("one")).await.unwrap().get_ref().text, "one");
    let err = c.unary(keyed("two")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("rate limit once exceeded"),
        "{err:?}"
    );
    assert!(err.metadata().get("retry-after").is_some());

    // A route needing a scope the key lacks: PERMISSION_DENIED.
    let mut raw = tonic::client::Grpc::new(
        tonic::transport::Endpoint::from_shared(gw.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    raw.ready().await.unwrap();
    let err = raw
        .unary::<Call, e2e::grpc_probe::Reply, _>(
            keyed("admin"),
            http::uri::PathAndQuery::from_static("/weir.test.v1.Admin/Do"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(err.metadata().get("x-weir-error").unwrap(), "forbidden");

    // A call no route takes: UNIMPLEMENTED.
    raw.ready().await.unwrap();
    let err = raw
        .unary::<Call, e2e::grpc_probe::Reply, _>(
            Request::new(call("nowhere")),
            http::uri::PathAndQuery::from_static("/weir.test.v1.Other/Do"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    assert!(err.message().starts_with("no route for POST"), "{err:?}");
    assert_eq!(
        up.state.calls(),
        1,
        "only the admitted call reached the server"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_unreachable_upstream_is_unavailable() {
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let gw = Gw::start_at(closed, "", "").await;
    let mut c = gw.client().await;
    let err = c.unary(Request::new(call("down"))).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(
        err.metadata().get("x-weir-error").unwrap(),
        "upstream-connect-failed"
    );
    gw.stop().await;
}

/// One gRPC message frame: flag 0 (uncompressed), 4-byte length, message.
fn grpc_frame(msg: &[u8]) -> bytes::Bytes {
    let mut out = Vec::with_capacity(5 + msg.len());
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out.into()
}

#[tokio::test]
async fn grpc_health_checks_take_a_not_serving_endpoint_out() {
    let serving = ProbeServer::start_reporting(true).await;
    let not_serving = ProbeServer::start_reporting(false).await;
    let dir = TempDir::new("gw-grpc-health").unwrap();
    let config = format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  probe:
    endpoints: ["{a}", "{b}"]
    protocol: http2
    health_check: {{ grpc: {{ service: weir.test.v1.Probe }}, interval: 20ms, healthy: 1, unhealthy: 1 }}
routes:
  - name: probe
    match: {{ grpc: {{ service: weir.test.v1.Probe }} }}
    upstream: probe
shutdown: {{ drain: 1s }}
"#,
        a = serving.addr,
        b = not_serving.addr
    );
    let path = dir.write("gateway.yaml", &config).unwrap();
    let gw = gateway::Gateway::bind(path, |_| None).await.unwrap();
    let admin = format!("http://{}/metrics", gw.local_addrs()["admin"]);
    let (trigger, signal) = shutdown::channel();
    let task = tokio::spawn(gw.serve(signal));
    let healthy = |m: &str, addr: std::net::SocketAddr| {
        m.lines()
            .find(|l| {
                l.starts_with("weir_upstream_endpoint_healthy{")
                    && l.contains(&format!("endpoint=\"{addr}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    // Bounded poll: the checks run on their interval.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let m = e2e::HttpClient::default()
            .get(&admin, &[])
            .await
            .unwrap()
            .text();
        if healthy(&m, not_serving.addr).as_deref() == Some("0") {
            assert_eq!(healthy(&m, serving.addr).as_deref(), Some("1"), "{m}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "NOT_SERVING endpoint never taken out:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    trigger.trigger();
    tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
}
