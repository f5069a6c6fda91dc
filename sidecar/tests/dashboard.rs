//! The sidecar's dashboard over real sockets: the page, the state document
//! (inbound limit, each destination's endpoints with breaker state and
//! countdown, retry budget, traffic figures, `identity: null`), the live
//! stream, and no secret of the config in any of them.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use support::*;

const HEADER_SECRET: &str = "collector-key-dash-9d1e";

async fn first_event(c: &HttpClient, admin: std::net::SocketAddr) -> (Value, String) {
    let req = Request::get(format!("http://{admin}/dashboard/events"))
        .header("host", admin.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut text = String::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .expect("an SSE frame")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
        if let Some(json) = text
            .split("\n\n")
            .filter(|e| e.starts_with("event: state"))
            .find_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        {
            return (serde_json::from_str(json).unwrap(), text.clone());
        }
    }
}

#[tokio::test]
async fn the_dashboard_shows_breakers_budgets_and_no_secret() {
    let app = Upstream::start().await;
    let good = Upstream::start().await;
    let dead = refused_addr().await;
    let yaml = config(
        app.addr,
        &[good.addr, dead],
        "circuit_breaker: { consecutive_failures: 1, ejection: { base: 1m, max: 1m, max_percent: 50 } }\nretry: { on: [connect_error], max_attempts: 2 }\n",
    ) + &format!(
        "telemetry:\n  otlp: {{ endpoint: 'http://127.0.0.1:1', headers: {{ x-api-key: {HEADER_SECRET} }} }}\n"
    );
    let sc = start_sidecar(&yaml).await;
    let c = client();

    let page = admin(&c, sc.admin, "/dashboard").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/dashboard/app.js"));

    // Calls through the outbound port until the dead endpoint's breaker opens.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let state = loop {
        let r = get(&c, sc.outbound, "svc").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let s = admin(&c, sc.admin, "/dashboard/api/state").await;
        assert_eq!(s.status, 200);
        let doc = s.json();
        let open = doc["destinations"][0]["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["breaker"]["state"] == "open");
        if open {
            assert!(!s.body.contains(HEADER_SECRET), "{}", s.body);
            break doc;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the breaker never opened: {doc}"
        );
    };
    assert_eq!(state["kind"], "sidecar");
    assert_eq!(state["service"], "test");
    assert!(state["identity"].is_null());
    assert_eq!(state["inbound"]["max_concurrent_requests"], 1000);
    let dest = &state["destinations"][0];
    assert_eq!(dest["name"], "svc");
    assert_eq!(dest["ejected"], 1);
    assert!(dest["retry_budget"]["remaining"].as_f64().is_some());
    let dead_ep = dest["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == dead.to_string())
        .unwrap();
    assert_eq!(dead_ep["breaker"]["state"], "open");
    let countdown = dead_ep["breaker"]["ejected_for_ms"].as_u64().unwrap();
    assert!(countdown > 0 && countdown <= 60_000, "{dead_ep}");
    let good_ep = dest["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == good.addr.to_string())
        .unwrap();
    assert_eq!(good_ep["breaker"]["state"], "closed");
    assert!(good_ep["latency_ewma_ms"].as_f64().is_some());

    // Rates need two readings: the second call has figures for the first.
    get(&c, sc.outbound, "svc").await;
    let doc = admin(&c, sc.admin, "/dashboard/api/state").await.json();
    let t = &doc["destinations"][0]["traffic"];
    assert!(t["rps"].as_f64().is_some_and(|r| r > 0.0), "{t}");
    assert!(t["per_second"]["retries"].as_f64().is_some(), "{t}");

    let (event, raw) = first_event(&c, sc.admin).await;
    assert_eq!(event["destinations"][0]["name"], "svc");
    assert!(!raw.contains(HEADER_SECRET));
    sc.stop().await;
}
