//! The gateway's dashboard over real HTTP: the page and its assets, the
//! state document (routes, upstreams, certificates, reloads, slow requests,
//! the mesh view read from peers), the live stream and its bound, and that
//! no secret of the config reaches any of them.

mod support;

use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use rcgen::{CertificateParams, KeyPair};
use serde_json::{Value, json};
use support::*;

const KEY_HASH: &str = "deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
const HMAC: &str = "hmac-secret-that-is-long-enough-0123456789";
const REDIS_PASS: &str = "redis-pass-7f3a9c";
const OTLP_HEADER: &str = "otlp-header-secret-41d2";
const HEADER_MATCH: &str = "internal-match-value-5e6f";

fn yaml(up: &Upstream, peer: &str, extra_route: &str) -> String {
    format!(
        r#"listeners:
  - name: public
    address: 127.0.0.1:0
  - name: secure
    address: 127.0.0.1:0
    tls: {{ certificates: [{{ cert: tls.crt, key: tls.key }}] }}
admin:
  address: 127.0.0.1:0
upstreams:
  svc: {{ endpoints: [{up}], health_check: {{ path: /healthz, interval: 1s }} }}
  other: {{ endpoints: [{up}] }}
routes:
  - name: keyed
    match: {{ path_prefix: /keyed }}
    version: 2
    upstream: svc
    auth: {{ any_of: [api_key, jwt] }}
    deprecated: {{ since: "2026-01-01", sunset: "2099-01-01" }}
  - name: open
    match: {{ path_prefix: /open, headers: [{{ name: x-internal, value: "{HEADER_MATCH}" }}] }}
    split: [{{ upstream: svc, weight: 90 }}, {{ upstream: other, weight: 10 }}]
    auth: {{ any_of: [none] }}
    rate_limit: []
{extra_route}auth:
  api_keys:
    - {{ name: inline, sha256: "{KEY_HASH}" }}
  jwt:
    - issuer: https://hs.test
      secret: "{HMAC}"
      algorithms: [HS256]
rate_limits:
  backend: local
  redis: {{ url: "redis://:{REDIS_PASS}@127.0.0.1:1/0" }}
  policies:
    p: {{ rate: 100, per: 1s }}
telemetry:
  otlp: {{ endpoint: "http://127.0.0.1:1", headers: {{ x-api-key: "{OTLP_HEADER}" }} }}
dashboard:
  jaeger_url: http://jaeger.example:16686
  max_streams: 2
  sidecars:
    - {{ name: peer, url: "{peer}" }}
    - {{ name: dead, url: "http://{dead}" }}
"#,
        up = up.addr,
        dead = closed_port(),
    )
}

fn prepared_dir() -> (TempDir, String) {
    let dir = TempDir::new();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["api.example.com".into()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2090, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    dir.write("tls.crt", &cert.pem());
    let pem = key.serialize_pem();
    let line = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .max_by_key(|l| l.len())
        .unwrap()
        .to_owned();
    dir.write("tls.key", &pem);
    (dir, line)
}

fn assert_clean(what: &str, text: &str, key_line: &str) {
    for secret in [
        KEY_HASH,
        "deadbeefdeadbeef",
        HMAC,
        REDIS_PASS,
        OTLP_HEADER,
        HEADER_MATCH,
        key_line,
    ] {
        assert!(!text.contains(secret), "{what} shows {secret:?}:\n{text}");
    }
}

/// A stand-in sidecar admin answering its dashboard state.
async fn peer() -> Upstream {
    start_upstream(|req| async move {
        let body = if req.uri().path() == "/dashboard/api/state" {
            json!({"kind": "sidecar", "service": "peer", "destinations": [
                {"name": "db", "traffic": {"rps": 3.0, "error_rate": 0.0}}
            ]})
            .to_string()
        } else {
            "{}".to_owned()
        };
        http::Response::builder()
            .header("content-type", "application/json")
            .body(full(body))
            .unwrap()
    })
    .await
}

/// Reads `n` SSE events from an open stream.
async fn events(url: &str, n: usize) -> (Vec<Value>, String) {
    let resp = client()
        .request(Request::get(url).body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/event-stream",
        "{resp:?}"
    );
    let mut body = resp.into_body();
    let mut text = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let frame = within("an SSE frame", body.frame()).await.unwrap().unwrap();
        let Ok(data) = frame.into_data() else {
            continue;
        };
        text.push_str(std::str::from_utf8(&data).unwrap());
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                assert!(event.starts_with("event: state\n"), "{event}");
                out.push(serde_json::from_str(data).unwrap());
            }
        }
    }
    let raw = out
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    (out, raw)
}

#[tokio::test]
async fn the_dashboard_shows_the_config_live_and_no_secret() {
    let up = echo_upstream("svc").await;
    let peer = peer().await;
    let (dir, key_line) = prepared_dir();
    let peer_url = format!("http://{}", peer.addr);
    let gw = TestGateway::start_in(dir, &yaml(&up, &peer_url, "")).await;
    let admin = |p: &str| format!("http://{}{p}", gw.admin());

    // The page and its assets, with headers that keep it to itself.
    let page = get(&admin("/dashboard")).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/dashboard/app.js"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    for asset in ["/dashboard/app.js", "/dashboard/style.css"] {
        let r = get(&admin(asset)).await;
        assert_eq!(r.status, 200, "{asset}");
        assert!(r.body.len() > 500, "{asset}");
    }
    let r = send(
        Request::post(admin("/dashboard/api/state"))
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405, "read-only");
    assert_eq!(get(&admin("/dashboard/nope")).await.status, 404);

    // Traffic, so routes have figures and the slow ring has entries.
    for _ in 0..5 {
        let r = get_with(&gw.url("/open"), &[("x-internal", HEADER_MATCH)]).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    let state = get(&admin("/dashboard/api/state")).await;
    assert_eq!(state.status, 200);
    assert_eq!(state.header("content-type"), Some("application/json"));
    let doc = state.json();
    assert_eq!(doc["kind"], "gateway");
    let names: Vec<&str> = doc["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["keyed", "open"], "{doc}");
    let keyed = &doc["routes"][0];
    assert_eq!(keyed["upstream"], "svc");
    assert_eq!(keyed["version"], 2);
    assert_eq!(keyed["deprecated"]["sunset"], "2099-01-01");
    assert_eq!(keyed["policies"]["auth"], "auth: api_key | jwt");
    let open = &doc["routes"][1];
    assert_eq!(open["split"][1], json!({"upstream": "other", "weight": 10}));
    assert_eq!(open["match"]["headers"][0], "x-internal=…");
    let slowest = open["slowest"].as_array().unwrap();
    assert!(!slowest.is_empty(), "{open}");
    assert_eq!(slowest[0]["status"], 200);
    let ups: Vec<&str> = doc["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(ups, ["other", "svc"]);
    let ep = &doc["upstreams"][1]["endpoints"][0];
    assert_eq!(ep["address"], up.addr.to_string());
    assert_eq!(ep["healthy"], true);
    assert_eq!(ep["breaker"], "closed");
    assert_eq!(doc["tls"][0]["listener"], "secure");
    assert_eq!(doc["tls"][0]["names"], json!(["api.example.com"]));
    assert!(doc["tls"][0]["days_left"].as_i64().unwrap() > 365);
    assert_eq!(doc["config"]["generation"], 1);
    assert_eq!(doc["links"]["jaeger"], "http://jaeger.example:16686");
    // The mesh view: the live peer's own figures, the dead one as an error.
    assert_eq!(doc["mesh"][0]["name"], "peer");
    assert_eq!(doc["mesh"][0]["state"]["destinations"][0]["name"], "db");
    assert!(doc["mesh"][1]["error"].is_string(), "{}", doc["mesh"]);
    assert_clean("state", &state.text(), &key_line);

    // A refused reload shows on the page; an accepted one bumps the generation.
    gw.write_config("listeners: [}\n");
    assert!(gw.reload().await.is_err());
    let doc = get(&admin("/dashboard/api/state")).await.json();
    assert_eq!(doc["config"]["last_reload"]["ok"], false, "{doc}");
    assert!(doc["config"]["last_error"]["message"].is_string());
    let extra = "  - name: added\n    match: { path_prefix: /added }\n    upstream: svc\n";
    gw.replace_config(&yaml(&up, &peer_url, extra))
        .await
        .unwrap();

    // The stream: frames arrive without asking, and carry the new route.
    let (frames, raw) = events(&admin("/dashboard/events"), 2).await;
    // The file watcher may have reloaded the same file too.
    assert!(frames[1]["config"]["generation"].as_u64() >= Some(2));
    assert_eq!(frames[1]["routes"][2]["name"], "added");
    assert!(
        frames[1]["generated_at_unix_ms"].as_u64() >= frames[0]["generated_at_unix_ms"].as_u64()
    );
    assert_clean("stream", &raw, &key_line);
    for asset in ["/dashboard", "/dashboard/app.js"] {
        assert_clean(asset, &get(&admin(asset)).await.text(), &key_line);
    }
}

#[tokio::test]
async fn streams_are_bounded_and_closing_a_page_frees_its_slot() {
    let up = echo_upstream("svc").await;
    let peer = peer().await;
    let (dir, _) = prepared_dir();
    let gw = TestGateway::start_in(dir, &yaml(&up, &format!("http://{}", peer.addr), "")).await;
    let url = format!("http://{}/dashboard/events", gw.admin());
    let open = || async {
        client()
            .request(Request::get(&url).body(empty()).unwrap())
            .await
            .unwrap()
    };
    let a = open().await;
    let b = open().await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    // max_streams: 2
    let refused = read_reply(open().await).await;
    assert_problem_slug(&refused, 503, "dashboard-streams-exhausted");
    drop(a);
    drop(b);
    // Closing the pages frees their slots (the bodies drop on the next frame).
    wait_until("a stream slot frees up", || async {
        let r = tokio::time::timeout(Duration::from_secs(5), open()).await;
        matches!(r, Ok(resp) if resp.status() == 200)
    })
    .await;
}

fn assert_problem_slug(reply: &Reply, status: u16, slug: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    let doc = reply.json();
    assert_eq!(
        doc["type"],
        format!("https://weir.dev/problems/{slug}"),
        "{doc}"
    );
}
