//! gRPC-Web through the real gateway, built from the protocol spec rather
//! than a client library: a browser-style HTTP/1.1 POST whose body is
//! length-prefixed messages (base64 for `-text`), answered with the messages
//! and a trailer frame (flag `0x80`) in the body; CORS preflight and exposed
//! headers; refusals as `grpc-status`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use e2e::TempDir;
use e2e::grpc_probe::{Call, ProbeServer, Reply, call};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use proxy_core::shutdown;

const PATIENCE: Duration = Duration::from_secs(20);
const ORIGIN: &str = "http://app.test";

struct Gw {
    url: String,
    trigger: shutdown::ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

async fn start(up: &ProbeServer) -> Gw {
    let dir = TempDir::new("gw-grpc-web").unwrap();
    let config = format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  probe: {{ endpoints: ["{up}"], protocol: http2 }}
auth:
  api_keys:
    - name: web
      sha256: c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c
routes:
  - name: probe
    match: {{ grpc: {{ service: weir.test.v1.Probe }} }}
    upstream: probe
    auth: {{ any_of: [api_key] }}
    cors:
      allow_origins: ["{ORIGIN}"]
      allow_methods: [POST]
      allow_headers: [content-type, x-grpc-web, x-user-agent, grpc-timeout, x-api-key]
      max_age: 10m
shutdown: {{ drain: 1s }}
"#,
        up = up.addr
    );
    let path = dir.write("gateway.yaml", &config).unwrap();
    let gw = gateway::Gateway::bind(path, |_| None).await.unwrap();
    let addrs = gw.local_addrs();
    let (trigger, signal) = shutdown::channel();
    let task = tokio::spawn(gw.serve(signal));
    Gw {
        url: format!("http://{}", addrs["public"]),
        trigger,
        task,
        _dir: dir,
    }
}

impl Gw {
    async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// A length-prefixed message (flag 0: data, uncompressed).
fn frame(msg: &impl Message) -> Vec<u8> {
    let m = msg.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&(m.len() as u32).to_be_bytes());
    out.extend_from_slice(&m);
    out
}

/// The frames of a gRPC-Web response body: messages, then trailers.
fn parse(mut body: &[u8]) -> (Vec<Reply>, Vec<(String, String)>) {
    let (mut replies, mut trailers) = (Vec::new(), Vec::new());
    while !body.is_empty() {
        let flag = body[0];
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = &body[5..5 + len];
        if flag & 0x80 != 0 {
            let text = std::str::from_utf8(payload).unwrap();
            for line in text.split("\r\n").filter(|l| !l.is_empty()) {
                let (k, v) = line.split_once(':').unwrap();
                trailers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        } else {
            replies.push(Reply::decode(payload).unwrap());
        }
        body = &body[5 + len..];
    }
    (replies, trailers)
}

/// Decodes base64 made of concatenated, separately padded chunks.
fn decode_text(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    for end in (4..=body.len()).step_by(4) {
        if body[end - 1] == b'=' || end == body.len() {
            out.extend(STANDARD.decode(&body[start..end]).unwrap());
            start = end;
        }
    }
    out
}

struct Got {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

async fn post(gw: &Gw, content_type: &str, body: Vec<u8>, key: bool) -> Got {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::post(format!("{}/weir.test.v1.Probe/Stream", gw.url))
        .header("content-type", content_type)
        .header("x-grpc-web", "1")
        .header("origin", ORIGIN);
    if key {
        req = req.header("x-api-key", "demo-key");
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn binary_grpc_web_carries_messages_and_trailers_in_the_body() {
    let up = ProbeServer::start().await;
    let gw = start(&up).await;
    let body = frame(&Call {
        count: 2,
        code: 5,
        ..call("web")
    });
    let got = post(&gw, "application/grpc-web+proto", body, true).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-type"], "application/grpc-web+proto");
    assert_eq!(got.headers["access-control-allow-origin"], ORIGIN);
    let exposed: Vec<_> = got
        .headers
        .get_all("access-control-expose-headers")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(exposed.join(",").contains("grpc-status"), "{exposed:?}");
    let (replies, trailers) = parse(&got.body);
    assert_eq!(replies.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(replies[0].text, "web");
    assert!(
        trailers.contains(&("grpc-status".into(), "5".into())),
        "{trailers:?}"
    );
    let message = trailers.iter().find(|(k, _)| k == "grpc-message").unwrap();
    assert_eq!(
        proxy_core::grpc::percent_decode(message.1.as_bytes()),
        "stream asked for NotFound"
    );
    gw.stop().await;
}

#[tokio::test]
async fn grpc_web_text_is_base64_both_ways() {
    let up = ProbeServer::start().await;
    let gw = start(&up).await;
    let encoded = STANDARD.encode(frame(&Call {
        count: 3,
        ..call("text")
    }));
    let got = post(&gw, "application/grpc-web-text", encoded.into_bytes(), true).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-type"], "application/grpc-web-text");
    let (replies, trailers) = parse(&decode_text(&got.body));
    assert_eq!(replies.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(
        trailers.contains(&("grpc-status".into(), "0".into())),
        "{trailers:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn preflight_and_refusal_speak_to_a_browser() {
    let up = ProbeServer::start().await;
    let gw = start(&up).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let preflight = http::Request::builder()
        .method("OPTIONS")
        .uri(format!("{}/weir.test.v1.Probe/Stream", gw.url))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,x-api-key",
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(preflight).await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["access-control-allow-origin"], ORIGIN);

    // No key: UNAUTHENTICATED in the headers of a trailers-only answer.
    let got = post(
        &gw,
        "application/grpc-web+proto",
        frame(&call("anon")),
        false,
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-type"], "application/grpc-web+proto");
    assert_eq!(got.headers["grpc-status"], "16");
    assert!(got.body.is_empty());
    assert_eq!(up.state.calls(), 0);
    gw.stop().await;
}
