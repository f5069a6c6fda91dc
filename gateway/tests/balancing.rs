//! Load balancing across an upstream's endpoints: round robin spreads,
//! power-of-two-choices avoids the busy endpoint, an endpoint that refuses
//! connections is ejected, and active health checks take an endpoint out and
//! bring it back.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::Request;
use support::*;
use tokio::sync::{Semaphore, mpsc};

fn yaml(endpoints: &[SocketAddr], extra: &str) -> String {
    let eps: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    config(&format!(
        "upstreams:\n  svc:\n    endpoints: [{}]\n{extra}routes:\n  - name: r\n    match: {{ path_prefix: / }}\n    upstream: svc\n",
        eps.join(", ")
    ))
}

/// Sends `n` sequential requests and counts them by `x-upstream`.
async fn spread(gw: &TestGateway, n: usize) -> HashMap<String, usize> {
    let c = client();
    let mut seen = HashMap::new();
    for _ in 0..n {
        let r = send_with(&c, Request::get(gw.url("/work")).body(empty()).unwrap()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        *seen
            .entry(r.header("x-upstream").unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn round_robin_spreads_evenly() {
    let ups = [
        echo_upstream("u0").await,
        echo_upstream("u1").await,
        echo_upstream("u2").await,
    ];
    let gw = TestGateway::start(&yaml(
        &ups.iter().map(|u| u.addr).collect::<Vec<_>>(),
        "    load_balancer: round_robin\n",
    ))
    .await;
    let seen = spread(&gw, 30).await;
    for name in ["u0", "u1", "u2"] {
        assert_eq!(seen.get(name), Some(&10), "{seen:?}");
    }
}

#[tokio::test]
async fn p2c_avoids_the_busy_endpoint() {
    // `slow` holds every request until released; `fast` answers at once.
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<()>();
    let gate = Arc::new(Semaphore::new(0));
    let slow_gate = gate.clone();
    let slow = start_upstream(move |_req| {
        let (tx, gate) = (arrived_tx.clone(), slow_gate.clone());
        async move {
            let _ = tx.send(());
            let _permit = gate.acquire().await;
            text_response(200, "slow")
        }
    })
    .await;
    let fast = echo_upstream("fast").await;
    let gw = TestGateway::start(&yaml(&[slow.addr, fast.addr], "    load_balancer: p2c\n")).await;

    let (mut to_slow, mut to_fast) = (0, 0);
    let mut held = Vec::new();
    for _ in 0..20 {
        let url = gw.url("/work");
        let mut task = tokio::spawn(async move { get(&url).await });
        // Either the request comes back from `fast`, or `slow` reports it arrived.
        tokio::select! {
            r = &mut task => {
                let r = r.expect("request task");
                assert_eq!(r.header("x-upstream"), Some("fast"));
                to_fast += 1;
            }
            _ = arrived.recv() => {
                to_slow += 1;
                held.push(task);
            }
        }
    }
    // With one request outstanding on `slow` and none on `fast`, P2C over two
    // endpoints always compares both and picks `fast`.
    assert!(to_slow <= 1, "slow got {to_slow} of 20 while busy");
    assert_eq!(to_fast + to_slow, 20);
    gate.add_permits(100);
    for t in held {
        assert_eq!(
            within("held request", t).await.expect("task").text(),
            "slow"
        );
    }
}

#[tokio::test]
async fn endpoint_refusing_connections_is_ejected() {
    let dead = closed_port();
    let alive = echo_upstream("alive").await;
    let gw = TestGateway::start(&yaml(
        &[dead, alive.addr],
        "    load_balancer: round_robin\n    passive_ejection: { base: 1m, max: 5m }\n",
    ))
    .await;
    let c = client();
    let mut failed = 0;
    for _ in 0..20 {
        let r = send_with(&c, Request::get(gw.url("/work")).body(empty()).unwrap()).await;
        match r.status.as_u16() {
            200 => assert_eq!(r.header("x-upstream"), Some("alive")),
            502 => {
                assert_problem(&r, 502, "upstream-connect-failed");
                failed += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(
        failed, 1,
        "one refusal ejects the endpoint; traffic moves to the healthy one"
    );
    assert_eq!(alive.requests(), 19);
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            &format!("weir_upstream_endpoint_healthy{{upstream=\"svc\",endpoint=\"{dead}\"}}")
        ),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            &format!(
                "weir_upstream_endpoint_healthy{{upstream=\"svc\",endpoint=\"{}\"}}",
                alive.addr
            )
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn active_health_checks_eject_and_recover() {
    let sick = Arc::new(AtomicBool::new(false));
    let flag = sick.clone();
    let a = start_upstream(move |req| {
        let sick = flag.load(Ordering::SeqCst);
        async move {
            if req.uri().path() == "/health" {
                return text_response(if sick { 503 } else { 200 }, "health");
            }
            echo_response("a", req).await
        }
    })
    .await;
    let b = echo_upstream("b").await;
    let gw = TestGateway::start(&yaml(
        &[a.addr, b.addr],
        "    load_balancer: round_robin\n    health_check: { path: /health, interval: 50ms, timeout: 1s, healthy: 2, unhealthy: 2 }\n",
    ))
    .await;
    let series = format!(
        "weir_upstream_endpoint_healthy{{upstream=\"svc\",endpoint=\"{}\"}}",
        a.addr
    );
    let health_of_a = || {
        let gw = &gw;
        let series = series.clone();
        async move { metric(&gw.metrics().await, &series) }
    };

    let seen = spread(&gw, 10).await;
    assert_eq!(
        (seen.get("a"), seen.get("b")),
        (Some(&5), Some(&5)),
        "{seen:?}"
    );

    sick.store(true, Ordering::SeqCst);
    wait_until("a is marked unhealthy", || async {
        health_of_a().await == Some(0.0)
    })
    .await;
    let seen = spread(&gw, 10).await;
    assert_eq!(
        seen.get("b"),
        Some(&10),
        "an unhealthy endpoint gets no traffic: {seen:?}"
    );

    sick.store(false, Ordering::SeqCst);
    wait_until("a is healthy again", || async {
        health_of_a().await == Some(1.0)
    })
    .await;
    let seen = spread(&gw, 10).await;
    assert_eq!(
        (seen.get("a"), seen.get("b")),
        (Some(&5), Some(&5)),
        "{seen:?}"
    );
}

#[tokio::test]
async fn dns_endpoints_are_resolved() {
    let up = echo_upstream("by-name").await;
    let yaml = config(&format!(
        "upstreams:\n  svc:\n    endpoints: ['dns:localhost:{}']\n    dns_refresh: 100ms\n    passive_ejection: {{ base: 1m, max: 1m }}\n\
         routes:\n  - name: r\n    match: {{ path_prefix: / }}\n    upstream: svc\n",
        up.addr.port()
    ));
    let gw = TestGateway::start(&yaml).await;
    // Until the first lookup lands the upstream has no endpoint (503); if
    // `localhost` also resolves to ::1, where nothing listens, that address
    // is ejected after one refusal (502).
    let url = gw.url("/x");
    wait_until("the name resolves to the upstream", || {
        let url = url.clone();
        async move { get(&url).await.status == 200 }
    })
    .await;
    let seen = spread(&gw, 10).await;
    assert_eq!(seen.get("by-name"), Some(&10), "{seen:?}");
}
