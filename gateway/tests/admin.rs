//! The admin listener: probes, Prometheus metrics, the effective config and
//! `POST /reload`.

mod support;

use http::Request;
use hyper_util::rt::TokioIo;
use support::*;

fn yaml(up: &Upstream, tag: &str) -> String {
    config(&format!(
        "upstreams:\n  svc: {{ endpoints: [{}] }}\nroutes:\n  - name: api\n    match: {{ path_prefix: /api }}\n    upstream: svc\n    rewrite: {{ response_headers: {{ set: {{ x-config: {tag} }} }} }}\n",
        up.addr
    ))
}

async fn failing_on_path() -> Upstream {
    start_upstream(|req| async move {
        if req.uri().path().ends_with("/fail") {
            text_response(500, "boom")
        } else {
            echo_response("svc", req).await
        }
    })
    .await
}

fn admin_url(gw: &TestGateway, path: &str) -> String {
    format!("http://{}{path}", gw.admin())
}

#[tokio::test]
async fn probes() {
    let up = echo_upstream("svc").await;
    let gw = TestGateway::start(&yaml(&up, "a")).await;
    let r = get(&admin_url(&gw, "/healthz")).await;
    assert_eq!((r.status.as_u16(), r.text().trim()), (200, "ok"));
    let url = admin_url(&gw, "/readyz");
    wait_until("readyz reports ready", || {
        let url = url.clone();
        async move { get(&url).await.status == 200 }
    })
    .await;
    let r = get(&admin_url(&gw, "/nope")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let r = send(
        Request::delete(admin_url(&gw, "/metrics"))
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn metrics_cover_routes_latency_endpoints_connections_and_reloads() {
    let up = failing_on_path().await;
    let gw = TestGateway::start(&yaml(&up, "a")).await;

    // One client connection kept open for the gauge.
    let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let conn_task = tokio::spawn(conn);
    for path in ["/api/1", "/api/2", "/api/3", "/api/fail"] {
        let req = Request::get(path)
            .header("host", "gw")
            .body(empty())
            .unwrap();
        read_reply(sender.send_request(req).await.unwrap()).await;
    }

    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "weir_requests_total{route=\"api\",status_class=\"2xx\"}"
        ),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "weir_requests_total{route=\"api\",status_class=\"5xx\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "weir_request_duration_seconds_count{route=\"api\"}"),
        Some(4.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "weir_request_duration_seconds_bucket{le=\"+Inf\",route=\"api\"}"
        ),
        Some(4.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            &format!(
                "weir_upstream_endpoint_healthy{{upstream=\"svc\",endpoint=\"{}\"}}",
                up.addr
            )
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "weir_active_connections"), Some(1.0), "{m}");

    // The connection closes: the gauge follows.
    drop(sender);
    let _ = conn_task.await;
    wait_until("active connections drop to 0", || async {
        metric(&gw.metrics().await, "weir_active_connections") == Some(0.0)
    })
    .await;

    let r = send(
        Request::post(admin_url(&gw, "/reload"))
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let m = gw.metrics().await;
    assert!(
        metric(&m, "weir_config_reloads_total{result=\"success\"}").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "weir_config_last_reload_success"),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn config_endpoint_shows_the_effective_config() {
    let up = echo_upstream("svc").await;
    let gw = TestGateway::start(&yaml(&up, "a")).await;
    let r = get(&admin_url(&gw, "/config")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert_eq!(doc["routes"][0]["name"], "api", "{doc}");
    assert_eq!(
        doc["upstreams"]["svc"]["endpoints"][0],
        up.addr.to_string(),
        "{doc}"
    );
    assert_eq!(doc["listeners"][0]["name"], "public", "{doc}");
    assert!(
        doc["limits"]["max_body_bytes"].is_number() || doc["limits"]["max_body_bytes"].is_string(),
        "{doc}"
    );
}

#[tokio::test]
async fn post_reload_applies_the_file() {
    let up = echo_upstream("svc").await;
    let gw = TestGateway::start(&yaml(&up, "a")).await;
    assert_eq!(get(&gw.url("/api")).await.header("x-config"), Some("a"));
    gw.write_config(&yaml(&up, "b"));
    let r = send(
        Request::post(admin_url(&gw, "/reload"))
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "reloaded");
    assert_eq!(get(&gw.url("/api")).await.header("x-config"), Some("b"));
    let doc = get(&admin_url(&gw, "/config")).await.json();
    assert_eq!(
        doc["routes"][0]["rewrite"]["response_headers"]["set"]["x-config"], "b",
        "{doc}"
    );
    assert_eq!(
        get(&admin_url(&gw, "/reload")).await.status,
        405,
        "reload is POST only"
    );
}
