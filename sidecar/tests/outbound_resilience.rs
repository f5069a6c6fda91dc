//! The outbound resilience stack against real in-process upstreams that fail in
//! controlled ways. Outcomes are checked by counting upstream hits, never by
//! measuring time.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test]
async fn retries_a_503_burst_for_get_but_never_for_post() {
    let app = Upstream::start().await;
    let up = Upstream::with(|n, _| {
        if n < 2 {
            Action::Status(503)
        } else {
            Action::Status(200)
        }
    })
    .await;
    let yaml = config(
        app.addr,
        &[up.addr],
        "retry: { backoff: { base: 1ms, max: 5ms } }",
    );
    let sc = start_sidecar(&yaml).await;
    let c = client();

    let got = get(&c, sc.outbound, "svc").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.attempts(), Some(3));
    assert_eq!(up.hits(), 3);

    up.set(|_, _| Action::Status(503));
    let got = send(&c, sc.outbound, "POST", "svc", "/orders", "{}").await;
    assert_eq!(got.status, 503, "the upstream's own 503 comes back");
    assert_eq!(up.hits(), 4, "POST is not idempotent: exactly one try");
    assert_eq!(got.attempts(), Some(1));
    sc.stop().await;
}

#[tokio::test]
async fn non_idempotent_opt_in_retries_post_and_replays_the_body() {
    let app = Upstream::start().await;
    let up = Upstream::with(|n, _| {
        if n == 0 {
            Action::Status(503)
        } else {
            Action::Status(201)
        }
    })
    .await;
    let yaml = config(
        app.addr,
        &[up.addr],
        "retry: { on: [503], non_idempotent: true, backoff: { base: 1ms, max: 5ms } }",
    );
    let sc = start_sidecar(&yaml).await;
    let c = client();
    let got = send(
        &c,
        sc.outbound,
        "POST",
        "svc",
        "/payments",
        "{\"amount\":5}",
    )
    .await;
    assert_eq!(got.status, 201);
    assert_eq!(got.attempts(), Some(2));
    assert_eq!(up.seen_header(1, "content-length").as_deref(), Some("12"));
    sc.stop().await;
}

#[tokio::test]
async fn connection_refused_is_retried_on_another_endpoint() {
    let app = Upstream::start().await;
    let good = Upstream::start().await;
    let dead = refused_addr().await;
    let yaml = config(
        app.addr,
        &[dead, good.addr],
        "load_balancer: round_robin\nretry: { backoff: { base: 1ms, max: 2ms } }\ncircuit_breaker: { consecutive_failures: 0 }",
    );
    let sc = start_sidecar(&yaml).await;
    let c = client();
    for _ in 0..10 {
        let got = send(&c, sc.outbound, "POST", "svc", "/", "x").await;
        assert_eq!(got.status, 200, "{}", got.body);
    }
    assert_eq!(good.hits(), 10);
    sc.stop().await;
}

#[tokio::test]
async fn a_failing_dependency_sees_at_most_one_plus_budget_ratio_times_the_load() {
    let app = Upstream::start().await;
    let up = Upstream::with(|_, _| Action::Status(503)).await;
    let yaml = config(
        app.addr,
        &[up.addr],
        "retry:\n  max_attempts: 3\n  backoff: { base: 1ms, max: 2ms }\n  budget: { ratio: 0.2, min_per_second: 0, window: 1m }\ncircuit_breaker: { consecutive_failures: 0 }",
    );
    let sc = start_sidecar(&yaml).await;
    let c = client();
    const N: u64 = 100;
    for _ in 0..N {
        assert_eq!(get(&c, sc.outbound, "svc").await.status, 503);
    }
    let hits = up.hits();
    // Without a budget, 3 tries each would be 300 hits.
    assert!(hits <= N + N / 5, "{hits} hits for {N} requests");
    assert!(hits > N, "retries happened within the budget ({hits})");
    let exhausted = metric(
        &c,
        sc.admin,
        "weir_sidecar_retry_budget_exhausted_total{destination=\"svc\"}",
    )
    .await;
    assert!(
        exhausted.unwrap_or(0.0) > 0.0,
        "budget exhaustion is counted"
    );
    sc.stop().await;
}

#[tokio::test]
async fn a_failing_endpoint_is_ejected_and_traffic_moves_to_the_healthy_one() {
    let app = Upstream::start().await;
    let bad = Upstream::with(|_, _| Action::Status(500)).await;
    let good = Upstream::start().await;
    let yaml = config(
        app.addr,
        &[bad.addr, good.addr],
        "load_balancer: round_robin\nretry: { max_attempts: 1 }\ncircuit_breaker: { consecutive_failures: 3, ejection: { base: 1m, max: 5m, max_percent: 50 } }",
    );
    let sc = start_sidecar(&yaml).await;
    let c = client();
    for _ in 0..40 {
        get(&c, sc.outbound, "svc").await;
    }
    assert_eq!(bad.hits(), 3, "ejected after 3 consecutive failures");
    assert_eq!(good.hits(), 37);
    let state = admin(&c, sc.admin, "/state").await.json();
    let eps = state["destinations"]["svc"]["endpoints"]
        .as_array()
        .unwrap()
        .clone();
    let bad_state = eps
        .iter()
        .find(|e| e["address"] == bad.addr.to_string())
        .unwrap();
    assert_eq!(bad_state["breaker"]["state"], "open");
    assert_eq!(state["destinations"]["svc"]["ejected"], 1);
    let transitions = metric(
        &c,
        sc.admin,
        &format!("weir_sidecar_breaker_transitions_total{{destination=\"svc\",endpoint=\"{}\",to=\"open\"}}", bad.addr),
    )
    .await;
    assert_eq!(transitions, Some(1.0));
    sc.stop().await;
}

#[tokio::test]
async fn all_endpoints_failing_fail_fast_then_recover_through_a_half_open_probe() {
    let app = Upstream::start().await;
    let up = Upstream::with(|_, _| Action::Hang).await;
    let yaml = config(
        app.addr,
        &[up.addr],
        "timeouts: { per_try: 200ms }\nretry: { max_attempts: 1 }\ncircuit_breaker: { consecutive_failures: 2, ejection: { base: 2s, max: 4s, max_percent: 50 } }",
    );
    let sc = start_sidecar(&yaml).await;
    let c = client();
    for _ in 0..2 {
        let got = get(&c, sc.outbound, "svc").await;
        assert_eq!(got.status, 504, "{}", got.body);
        assert_eq!(
            got.json()["type"],
            "https://weir.dev/problems/upstream-timeout"
        );
    }
    assert_eq!(up.hits(), 2);
    // Open: answered by the sidecar without touching the upstream, so without
    // waiting for the per-try timeout.
    for _ in 0..5 {
        let got = get(&c, sc.outbound, "svc").await;
        assert_eq!(got.status, 503);
        let p = got.json();
        assert_eq!(p["type"], "https://weir.dev/problems/circuit-open");
        assert!(p["request_id"].is_string(), "{p}");
        assert_eq!(got.headers["content-type"], "application/problem+json");
    }
    assert_eq!(up.hits(), 2, "fail fast: no request reached the upstream");

    // Healed: once the ejection time passes, one probe closes the circuit.
    up.set(|_, _| Action::Status(200));
    let mut ok = 0;
    for _ in 0..400 {
        let got = get(&c, sc.outbound, "svc").await;
        if got.status == 200 {
            ok += 1;
            if ok == 3 {
                break;
            }
        } else {
            assert_eq!(got.json()["type"], "https://weir.dev/problems/circuit-open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(ok, 3, "recovered");
    assert_eq!(
        up.hits(),
        2 + 3,
        "only the probe and the requests after it reached the upstream"
    );
    let state = admin(&c, sc.admin, "/state").await.json();
    assert_eq!(
        state["destinations"]["svc"]["endpoints"][0]["breaker"]["state"],
        "closed"
    );
    sc.stop().await;
}

#[tokio::test]
async fn per_try_timeout_retries_a_hung_try() {
    let app = Upstream::start().await;
    let up = Upstream::with(|n, _| {
        if n == 0 {
            Action::Hang
        } else {
            Action::Status(200)
        }
    })
    .await;
    let yaml = config(
        app.addr,
        &[up.addr],
        "timeouts: { per_try: 500ms, overall: 10s }\nretry: { backoff: { base: 1ms, max: 2ms } }",
    );
    let sc = start_sidecar(&yaml).await;
    let c = client();
    let got = get(&c, sc.outbound, "svc").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.attempts(), Some(2));
    sc.stop().await;
}

#[tokio::test]
async fn overall_timeout_bounds_every_try() {
    let app = Upstream::start().await;
    let up = Upstream::with(|_, _| Action::Hang).await;
    let yaml = config(
        app.addr,
        &[up.addr],
        "timeouts: { per_try: 200ms, overall: 500ms }\nretry: { max_attempts: 10, backoff: { base: 1ms, max: 2ms } }\ncircuit_breaker: { consecutive_failures: 0 }",
    );
    let sc = start_sidecar(&yaml).await;
    let c = client();
    let got = get(&c, sc.outbound, "svc").await;
    assert_eq!(got.status, 504);
    assert!(
        got.json()["detail"]
            .as_str()
            .unwrap()
            .contains("overall timeout"),
        "{}",
        got.body
    );
    let hits = up.hits();
    assert!(
        (2..=3).contains(&hits),
        "overall deadline stopped the retries after {hits} tries"
    );
    sc.stop().await;
}

#[tokio::test]
async fn a_response_reset_mid_body_is_not_retried() {
    let app = Upstream::start().await;
    let up = Upstream::with(|_, _| Action::ResetMidBody).await;
    let yaml = config(
        app.addr,
        &[up.addr],
        "retry: { backoff: { base: 1ms, max: 2ms } }",
    );
    let sc = start_sidecar(&yaml).await;
    let c = client();
    let got = get(&c, sc.outbound, "svc").await;
    assert_eq!(got.status, 200, "the head was already forwarded");
    assert!(got.body.starts_with("<body error"), "{}", got.body);
    assert_eq!(up.hits(), 1);
    sc.stop().await;
}

#[tokio::test]
async fn p2c_peak_ewma_prefers_the_fast_endpoint() {
    let app = Upstream::start().await;
    let fast = Upstream::start().await;
    let slow = Upstream::with(|_, _| Action::Delay(Duration::from_millis(100), 200)).await;
    let yaml = config(app.addr, &[fast.addr, slow.addr], "load_balancer: p2c_ewma");
    let sc = start_sidecar(&yaml).await;
    let c = client();
    for _ in 0..60 {
        assert_eq!(get(&c, sc.outbound, "svc").await.status, 200);
    }
    assert!(slow.hits() <= 6, "slow endpoint got {} of 60", slow.hits());
    assert!(fast.hits() >= 54);
    sc.stop().await;
}

#[tokio::test]
async fn routes_by_host_absolute_uri_and_dns_style_names() {
    let app = Upstream::start().await;
    let up = Upstream::start().await;
    let sc = start_sidecar(&config(app.addr, &[up.addr], "")).await;
    let c = client();
    assert_eq!(get(&c, sc.outbound, "svc:80").await.status, 200);
    assert_eq!(
        get(&c, sc.outbound, "svc.shop.svc.cluster.local")
            .await
            .status,
        200
    );
    assert_eq!(get(&c, sc.outbound, "svc.shop").await.status, 200);
    let external = get(&c, sc.outbound, "svc.example.com").await;
    assert_eq!(external.status, 404, "external names are not captured");
    let unknown = get(&c, sc.outbound, "nope").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.json()["type"],
        "https://weir.dev/problems/unknown-destination"
    );

    // HTTP_PROXY users send absolute-form requests.
    let mut stream = tokio::net::TcpStream::connect(sc.outbound).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET http://svc/items?x=1 HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(up.hits(), 4);
    sc.stop().await;
}

#[tokio::test]
async fn grpc_unavailable_over_http2_is_retried_for_post_calls() {
    let app = Upstream::start().await;
    let up = Upstream::with(|n, _| match n {
        0 => Action::GrpcStatus(14),
        1 => Action::GrpcTrailers(14),
        _ => Action::GrpcTrailers(0),
    })
    .await;
    let yaml = config(
        app.addr,
        &[up.addr],
        "protocol: http2\nretry: { backoff: { base: 1ms, max: 2ms } }",
    );
    let sc = start_sidecar(&yaml).await;
    // A gRPC client of the app dials the sidecar with `:authority: svc`.
    let tcp = tokio::net::TcpStream::connect(sc.outbound).await.unwrap();
    let (mut c, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method("POST")
        .uri("http://svc/shop.Catalog/GetProduct")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"\0\0\0\0\x01x",
        )))
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-retry-attempts"], "3");
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap();
    let trailers = body.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(up.hits(), 3);
    assert_eq!(
        up.seen_header(2, "content-type").as_deref(),
        Some("application/grpc")
    );
    sc.stop().await;
}

#[tokio::test]
async fn dns_endpoints_are_resolved_and_balanced_per_address() {
    let app = Upstream::start().await;
    let up = Upstream::start().await;
    let yaml = format!(
        "service: test\ninbound:\n  address: 127.0.0.1:0\n  app: {}\noutbound:\n  address: 127.0.0.1:0\nservices:\n  svc:\n    endpoints: [\"dns:localhost:{}\"]\n    dns_refresh: 200ms\n    retry: {{ backoff: {{ base: 1ms, max: 2ms }} }}\nadmin:\n  address: 127.0.0.1:0\n",
        app.addr,
        up.addr.port()
    );
    let sc = start_sidecar(&yaml).await;
    let c = client();
    // Wait for the first resolution to land in the endpoint set.
    let mut endpoints = Vec::new();
    for _ in 0..200 {
        let state = admin(&c, sc.admin, "/state").await.json();
        endpoints = state["destinations"]["svc"]["endpoints"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !endpoints.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        endpoints
            .iter()
            .any(|e| e["address"] == up.addr.to_string()),
        "localhost resolved to {endpoints:?}"
    );
    // localhost may also resolve to ::1, where nothing listens: connect errors
    // there are retried on 127.0.0.1, so every request succeeds.
    for _ in 0..20 {
        let got = get(&c, sc.outbound, "svc").await;
        assert_eq!(got.status, 200, "{}", got.body);
    }
    assert_eq!(up.hits(), 20);
    sc.stop().await;
}
