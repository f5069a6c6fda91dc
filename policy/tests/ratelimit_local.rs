//! Local rate limiting through `Policies::check`, on tokio's paused clock.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use http::StatusCode;
use weir_policy::ratelimit::gcra::Quota;
use weir_policy::ratelimit::local::LocalLimiter;
use weir_policy::{PolicyState, Rejection};

const CONFIG: &str = r#"
auth:
  api_keys:
    - { name: demo, sha256: "c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c" }
rate_limits:
  trusted_proxies: [10.0.0.0/8]
  headers: both
  policies:
    per-ip:      { rate: 10, per: 1s, burst: 5, key: [client_ip] }
    shared:      { rate: 2, per: 1m, burst: 2 }
    each-route:  { rate: 2, per: 1m, burst: 2, per_route: true }
    per-consumer: { rate: 100, per: 1s, burst: 100, key: [consumer] }
    tiny-global: { rate: 3, per: 1m, burst: 3 }
    wide:        { rate: 1, per: 1h, burst: 20 }
    narrow-ip:   { rate: 1, per: 1h, burst: 2, key: [client_ip] }
routes:
  - { name: a, rate_limit: [per-ip] }
  - { name: s1, rate_limit: [shared] }
  - { name: s2, rate_limit: [shared] }
  - { name: r1, rate_limit: [each-route] }
  - { name: r2, rate_limit: [each-route] }
  - { name: both, auth: { any_of: [api_key, none] }, rate_limit: [per-consumer, tiny-global] }
  - { name: consumer-only, auth: { any_of: [api_key, none] }, rate_limit: [per-consumer] }
  - { name: pair, rate_limit: [wide, narrow-ip] }
  - { name: wide-only, rate_limit: [wide] }
"#;

async fn hit(
    b: &Built,
    route: &str,
    peer: IpAddr,
    headers: &[(&str, &str)],
) -> Result<weir_policy::Admitted, Rejection> {
    let mut parts = request("GET", "/", headers);
    b.policies.check(b.route(route), &mut parts, peer).await
}

async fn admitted(b: &Built, route: &str, peer: IpAddr, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(hit(b, route, peer, &[]).await.is_ok());
    }
    ok
}

#[tokio::test(start_paused = true)]
async fn admitted_count_matches_rate_and_burst() {
    let b = build(CONFIG, &PolicyState::new());
    // A burst at one instant: exactly `burst`.
    assert_eq!(admitted(&b, "a", PEER, 50).await, 5);
    // Then one request every 10ms for 10s at 10/s: ~100 more (±1 for edges).
    let mut ok = 0;
    for _ in 0..1000 {
        tokio::time::advance(Duration::from_millis(10)).await;
        ok += admitted(&b, "a", PEER, 1).await;
    }
    assert!((99..=101).contains(&ok), "{ok}");
}

#[tokio::test(start_paused = true)]
async fn rejection_and_headers() {
    let b = build(CONFIG, &PolicyState::new());
    let first = hit(&b, "a", PEER, &[]).await.unwrap();
    let h = &first.response_headers;
    assert_eq!(h["ratelimit-policy"], "\"per-ip\";q=10;w=1");
    assert_eq!(h["ratelimit"], "\"per-ip\";r=4;t=1");
    assert_eq!(h["x-ratelimit-limit"], "10");
    assert_eq!(h["x-ratelimit-remaining"], "4");
    admitted(&b, "a", PEER, 4).await;
    let rej = hit(&b, "a", PEER, &[("x-request-id", "rid-1")])
        .await
        .unwrap_err();
    assert_eq!(rej.reason(), "rate_limited");
    let resp = rej.into_response();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(resp.headers()["ratelimit"], "\"per-ip\";r=0;t=1");
}

#[tokio::test(start_paused = true)]
async fn separate_keys_are_independent() {
    let b = build(CONFIG, &PolicyState::new());
    let other: IpAddr = "198.51.100.1".parse().unwrap();
    assert_eq!(admitted(&b, "a", PEER, 20).await, 5);
    assert_eq!(admitted(&b, "a", other, 20).await, 5);
    // Behind a trusted proxy, the forwarded client is the key, and a forged
    // left-most entry does not buy a new bucket.
    let proxy: IpAddr = "10.1.1.1".parse().unwrap();
    let mut ok = 0;
    for i in 0..20 {
        let forged = format!("203.0.113.{i}, 198.51.100.77");
        ok += usize::from(
            hit(&b, "a", proxy, &[("x-forwarded-for", &forged)])
                .await
                .is_ok(),
        );
    }
    assert_eq!(ok, 5);
}

#[tokio::test(start_paused = true)]
async fn one_policy_on_many_routes_is_one_limit_unless_per_route() {
    let b = build(CONFIG, &PolicyState::new());
    let shared = admitted(&b, "s1", PEER, 5).await + admitted(&b, "s2", PEER, 5).await;
    assert_eq!(shared, 2, "shared policy: one limit across routes");
    let per_route = admitted(&b, "r1", PEER, 5).await + admitted(&b, "r2", PEER, 5).await;
    assert_eq!(per_route, 4, "per_route: one limit per route");
}

#[tokio::test(start_paused = true)]
async fn the_strictest_limit_decides() {
    let b = build(CONFIG, &PolicyState::new());
    // per-consumer would allow 100; the global 3 decides.
    let mut ok = 0;
    let mut last = None;
    for _ in 0..10 {
        match hit(&b, "both", PEER, &[("x-api-key", "demo-key")]).await {
            Ok(_) => ok += 1,
            Err(r) => last = Some(r),
        }
    }
    assert_eq!(ok, 3);
    let rej = last.unwrap();
    assert!(
        matches!(rej.kind(), weir_policy::RejectionKind::RateLimited { policy, .. } if &**policy == "tiny-global")
    );
    // The refused request spent nothing of per-consumer: 100 - 3 left.
    assert_eq!(
        rej.headers()["ratelimit"],
        "\"per-consumer\";r=97;t=1, \"tiny-global\";r=0;t=20"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_one_limit_refuses_spends_nothing_of_the_others() {
    let b = build(CONFIG, &PolicyState::new());
    let key = [("x-api-key", "demo-key")];
    let mut ok = 0;
    for _ in 0..50 {
        ok += usize::from(hit(&b, "both", PEER, &key).await.is_ok());
    }
    assert_eq!(ok, 3, "tiny-global admits 3");
    // per-consumer paid for the 3 admitted requests only, not for the 47
    // that tiny-global refused.
    let admitted = hit(&b, "consumer-only", PEER, &key).await.unwrap();
    assert_eq!(
        admitted.response_headers["ratelimit"],
        "\"per-consumer\";r=96;t=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_check_all_then_commit_is_exact() {
    // 4 clients x 25 requests at once on `pair`: narrow-ip admits 2 per
    // client, so 8 pass, and wide (burst 20) must have paid for exactly
    // those 8, whatever the interleaving across threads.
    let b = build(CONFIG, &PolicyState::new());
    let mut tasks = Vec::new();
    for i in 0..100u8 {
        let p = b.policies.clone();
        let route = b.route("pair").clone();
        let peer = IpAddr::from([198, 51, 100, i % 4]);
        tasks.push(tokio::spawn(async move {
            let mut parts = request("GET", "/", &[]);
            p.check(&route, &mut parts, peer).await.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 8);
    assert_eq!(admitted(&b, "wide-only", PEER, 30).await, 12);
}

#[tokio::test(start_paused = true)]
async fn state_survives_a_reload() {
    let state = PolicyState::new();
    let b1 = build(CONFIG, &state);
    assert_eq!(admitted(&b1, "s1", PEER, 5).await, 2);
    // Same policy, rebuilt: still exhausted.
    let b2 = build(CONFIG, &state);
    assert_eq!(admitted(&b2, "s1", PEER, 5).await, 0);
    // Changed numbers: a new limit.
    let b3 = build(
        &CONFIG.replace("shared:      { rate: 2", "shared:      { rate: 3"),
        &state,
    );
    assert_eq!(admitted(&b3, "s1", PEER, 5).await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_million_distinct_keys_stay_bounded() {
    // A slow limit, so every entry stays live: only the bound can evict.
    let quota = Quota::new(1, Duration::from_secs(3600), 1).unwrap();
    let limiter = LocalLimiter::new(quota, 50_000);
    let cap = limiter.capacity();
    let mut key = String::new();
    for i in 0..1_000_000u32 {
        key.clear();
        key.push_str("client-");
        key.push_str(&i.to_string());
        assert!(limiter.check(&key).allowed);
    }
    let held = limiter.len();
    assert!(held <= cap, "{held} keys held, capacity {cap}");
    assert!(held >= cap / 2, "eviction is partial, not a flush: {held}");
    // The most recent keys are remembered: the limit still bites.
    assert!(!limiter.check("client-999999").allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_on_one_key_are_counted_exactly() {
    let b = build(CONFIG, &PolicyState::new());
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let p = b.policies.clone();
        let route = b.route("s1").clone();
        tasks.push(tokio::spawn(async move {
            let mut parts = request("GET", "/", &[]);
            p.check(&route, &mut parts, PEER).await.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 2);
}
