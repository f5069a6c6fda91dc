//! The Redis backend: replicas share one limit, and Redis failures follow the
//! configured mode, then recover.
//!
//! Tests that need a real Redis read `REDIS_URL` (default
//! `redis://127.0.0.1:6379`) and are skipped with a message when it is absent,
//! except under `CI=true`, where they fail.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use http::StatusCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use weir_policy::{PolicyState, RoutePolicy};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The Redis address, or `None` (after saying why) when it is not running.
async fn redis_addr() -> Option<SocketAddr> {
    let url = redis_url();
    let reachable = async {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await.ok()?;
        let info = client.get_connection_info();
        match &info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => {
                tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .ok()?
                    .next()
            }
            _ => None,
        }
    };
    match tokio::time::timeout(Duration::from_secs(2), reachable)
        .await
        .ok()
        .flatten()
    {
        Some(a) => Some(a),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("Redis at {url} is required under CI=true")
        }
        None => {
            eprintln!("skipping: no Redis at {url} (set REDIS_URL)");
            None
        }
    }
}

fn unique_prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("weir-test:{tag}:{}:{nanos}:", std::process::id())
}

fn config(url: &str, prefix: &str, on_error: &str, replicas: u32, limit: u32) -> String {
    format!(
        r#"
rate_limits:
  backend: redis
  redis: {{ url: "{url}", timeout: 2s, on_error: {on_error}, replicas: {replicas}, key_prefix: "{prefix}" }}
  policies:
    hourly: {{ rate: {limit}, per: 1h, burst: {limit}, key: [client_ip] }}
routes:
  - {{ name: r, rate_limit: [hourly] }}
"#
    )
}

async fn check(
    b: &Built,
    route: &RoutePolicy,
) -> Result<weir_policy::Admitted, weir_policy::Rejection> {
    let mut parts = request("GET", "/", &[]);
    b.policies.check(route, &mut parts, PEER).await
}

fn metric(state: &PolicyState, needle: &str) -> u64 {
    let mut registry = prometheus_client::registry::Registry::default();
    state.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("redis://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_limit() {
    let Some(_) = redis_addr().await else { return };
    let prefix = unique_prefix("shared");
    let yaml = config(&redis_url(), &prefix, "closed", 2, 10);
    // Two independent instances, as two gateway processes would be.
    let g1 = build(&yaml, &PolicyState::new());
    let g2 = build(&yaml, &PolicyState::new());
    let mut tasks = Vec::new();
    for i in 0..40 {
        let g = if i % 2 == 0 {
            g1.policies.clone()
        } else {
            g2.policies.clone()
        };
        let route = if i % 2 == 0 {
            g1.route("r").clone()
        } else {
            g2.route("r").clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut parts = request("GET", "/", &[]);
            g.check(&route, &mut parts, PEER).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(r) => assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{}", r.reason()),
        }
    }
    assert_eq!(
        ok, 10,
        "two instances together admit the limit once, exactly"
    );
}

#[tokio::test]
async fn redis_down_fails_open_when_configured() {
    let state = PolicyState::new();
    let b = build(&config(&closed_port_url(), "x:", "open", 1, 2), &state);
    for _ in 0..5 {
        let admitted = check(&b, b.route("r")).await.expect("fail open admits");
        assert!(
            admitted.response_headers.get("ratelimit").is_none(),
            "no state to report"
        );
        assert!(admitted.response_headers.get("ratelimit-policy").is_some());
    }
    assert_eq!(metric(&state, "weir_ratelimit_backend_errors_total"), 5);
    assert_eq!(metric(&state, "result=\"failed_open\""), 5);
}

#[tokio::test]
async fn redis_down_fails_closed_when_configured() {
    let state = PolicyState::new();
    let b = build(&config(&closed_port_url(), "x:", "closed", 1, 2), &state);
    let mut parts = request("GET", "/", &[("x-request-id", "abc")]);
    let rej = b
        .policies
        .check(b.route("r"), &mut parts, PEER)
        .await
        .unwrap_err();
    assert_eq!(rej.reason(), "rate_limiter_unavailable");
    let resp = rej.into_response();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(metric(&state, "weir_ratelimit_backend_errors_total"), 1);
}

#[tokio::test]
async fn redis_down_falls_back_to_the_local_share() {
    let state = PolicyState::new();
    // 10 for the fleet of 2 replicas: 5 for this one while Redis is away.
    let b = build(&config(&closed_port_url(), "x:", "local", 2, 10), &state);
    let mut ok = 0;
    for _ in 0..20 {
        ok += usize::from(check(&b, b.route("r")).await.is_ok());
    }
    assert_eq!(ok, 5);
    assert_eq!(metric(&state, "result=\"fallback_admitted\""), 5);
    assert_eq!(metric(&state, "result=\"fallback_limited\""), 15);
}

/// A TCP proxy to Redis that the test switches off (dropping every
/// connection) and on again, standing in for Redis restarting.
struct Proxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, rx) = watch::channel(true);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !*rx.borrow() {
                    continue; // dropped: the client sees the connection close
                }
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// Calls until Redis decides again (each failed call starts one reconnect).
async fn wait_for_redis(b: &Built, state: &PolicyState) -> bool {
    for _ in 0..200 {
        let before = metric(state, "result=\"admitted\"");
        assert!(check(b, b.route("r")).await.is_ok());
        if metric(state, "result=\"admitted\"") > before {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn recovers_when_redis_returns() {
    let Some(redis) = redis_addr().await else {
        return;
    };
    let proxy = Proxy::start(redis).await;
    // Redis is away when the gateway starts: the build does not fail.
    proxy.set(false);
    let state = PolicyState::new();
    let url = format!("redis://{}", proxy.addr);
    let b = build(
        &config(&url, &unique_prefix("recover"), "local", 1, 1000),
        &state,
    );
    assert!(check(&b, b.route("r")).await.is_ok());
    assert_eq!(metric(&state, "result=\"fallback_admitted\""), 1);

    proxy.set(true);
    assert!(
        wait_for_redis(&b, &state).await,
        "Redis decisions start when it appears"
    );

    // Redis goes away under established connections.
    proxy.set(false);
    let fallback_before = metric(&state, "result=\"fallback_admitted\"");
    for _ in 0..3 {
        assert!(check(&b, b.route("r")).await.is_ok());
    }
    assert!(
        metric(&state, "result=\"fallback_admitted\"") >= fallback_before + 2,
        "local fallback while Redis is away"
    );
    assert!(metric(&state, "weir_ratelimit_backend_errors_total") >= 3);

    proxy.set(true);
    assert!(
        wait_for_redis(&b, &state).await,
        "Redis decisions resume after it returns"
    );
}

/// Two limits on one route, shared through Redis: `narrow` (2 per client)
/// refuses most requests, and `wide` (20 for everyone) must have paid only
/// for the admitted ones, also with two gateways deciding concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_one_limit_refuses_spends_nothing_of_the_others() {
    let Some(_) = redis_addr().await else { return };
    let prefix = unique_prefix("check-all");
    let yaml = format!(
        r#"
rate_limits:
  backend: redis
  redis: {{ url: "{}", timeout: 2s, on_error: closed, key_prefix: "{prefix}" }}
  policies:
    wide: {{ rate: 1, per: 1h, burst: 20 }}
    narrow: {{ rate: 1, per: 1h, burst: 2, key: [client_ip] }}
routes:
  - {{ name: pair, rate_limit: [wide, narrow] }}
  - {{ name: wide-only, rate_limit: [wide] }}
"#,
        redis_url()
    );
    let g1 = build(&yaml, &PolicyState::new());
    let g2 = build(&yaml, &PolicyState::new());
    let mut tasks = Vec::new();
    for i in 0..60u8 {
        let g = if i % 2 == 0 { &g1 } else { &g2 };
        let (p, route) = (g.policies.clone(), g.route("pair").clone());
        let peer = std::net::IpAddr::from([198, 51, 100, i % 3]);
        tasks.push(tokio::spawn(async move {
            let mut parts = request("GET", "/", &[]);
            p.check(&route, &mut parts, peer).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(r) => assert_eq!(r.reason(), "rate_limited"),
        }
    }
    assert_eq!(ok, 6, "2 for each of 3 clients");
    // wide paid for 6: 14 left, and a refusal reports them as they stay.
    let mut parts = request("GET", "/", &[]);
    let rej = g1
        .policies
        .check(
            g1.route("pair"),
            &mut parts,
            "198.51.100.0".parse().unwrap(),
        )
        .await
        .unwrap_err();
    let state = rej.headers()["ratelimit"].to_str().unwrap().to_owned();
    assert!(state.starts_with("\"wide\";r=14;"), "{state}");
    let mut left = 0;
    for _ in 0..30 {
        left += usize::from(check(&g1, g1.route("wide-only")).await.is_ok());
    }
    assert_eq!(left, 14);
}
