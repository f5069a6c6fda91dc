//! Failed authentication is throttled per client address, before any
//! credential is checked; successes, anonymous requests and 403s spend
//! nothing.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use http::StatusCode;
use weir_policy::{PolicyState, Rejection};

const DEMO_KEY_SHA256: &str = "c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c";

fn config(limit: &str) -> String {
    format!(
        r#"
auth:
  api_keys:
    - {{ name: demo, sha256: "{DEMO_KEY_SHA256}", scopes: [read] }}
  failure_limit: {limit}
rate_limits:
  policies:
    per-ip: {{ rate: 1, per: 1h, burst: 100, key: [client_ip] }}
routes:
  - {{ name: key, auth: {{ any_of: [api_key] }}, rate_limit: [per-ip] }}
  - {{ name: optional, auth: {{ any_of: [api_key, none] }} }}
  - {{ name: write, auth: {{ any_of: [api_key], scopes: [write] }} }}
  - {{ name: open }}
"#
    )
}

async fn call(b: &Built, route: &str, peer: IpAddr, key: Option<&str>) -> Result<(), Rejection> {
    let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
    let mut parts = request("GET", "/", &headers);
    b.policies
        .check(b.route(route), &mut parts, peer)
        .await
        .map(|_| ())
}

fn reason(r: Result<(), Rejection>) -> &'static str {
    match r {
        Ok(()) => "admitted",
        Err(r) => r.reason(),
    }
}

const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

#[tokio::test(start_paused = true)]
async fn a_flood_of_bad_keys_gets_429_and_guessing_is_slowed() {
    let b = build(
        &config("{ rate: 1, per: 10s, burst: 3 }"),
        &PolicyState::new(),
    );
    for _ in 0..3 {
        assert_eq!(
            reason(call(&b, "key", PEER, Some("guess")).await),
            "unknown_api_key"
        );
    }
    let rej = call(&b, "key", PEER, Some("guess")).await.unwrap_err();
    assert_eq!(rej.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rej.headers()["retry-after"], "10");
    let resp = rej.into_response();
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    // Throttled before the credential check: a right guess looks the same
    // as a wrong one, and a missing one too.
    assert_eq!(
        reason(call(&b, "key", PEER, Some("demo-key")).await),
        "rate_limited"
    );
    assert_eq!(reason(call(&b, "key", PEER, None).await), "rate_limited");
    // Another client is not affected.
    assert_eq!(
        reason(call(&b, "key", OTHER, Some("demo-key")).await),
        "admitted"
    );
    // One more guess per 10s.
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        reason(call(&b, "key", PEER, Some("guess")).await),
        "unknown_api_key"
    );
    assert_eq!(
        reason(call(&b, "key", PEER, Some("guess")).await),
        "rate_limited"
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        reason(call(&b, "key", PEER, Some("demo-key")).await),
        "admitted"
    );
    // None of the refused requests spent the route's rate limit: PEER was
    // admitted once before, so after this one 98 are left.
    let mut parts = request("GET", "/", &[("x-api-key", "demo-key")]);
    let admitted = b
        .policies
        .check(b.route("key"), &mut parts, PEER)
        .await
        .unwrap();
    assert_eq!(
        admitted.response_headers["ratelimit"],
        "\"per-ip\";r=98;t=7200"
    );
}

#[tokio::test(start_paused = true)]
async fn anonymous_requests_and_403s_spend_nothing() {
    let b = build(
        &config("{ rate: 1, per: 1h, burst: 2 }"),
        &PolicyState::new(),
    );
    // Valid key without the scope: 403s are not guesses.
    for _ in 0..10 {
        assert_eq!(
            reason(call(&b, "write", PEER, Some("demo-key")).await),
            "insufficient_scope"
        );
    }
    for _ in 0..10 {
        assert_eq!(reason(call(&b, "optional", PEER, None).await), "admitted");
        assert_eq!(reason(call(&b, "open", PEER, None).await), "admitted");
        assert_eq!(
            reason(call(&b, "key", PEER, Some("demo-key")).await),
            "admitted"
        );
    }
    // Now spend the budget.
    for _ in 0..2 {
        call(&b, "key", PEER, Some("guess")).await.unwrap_err();
    }
    // Throttled for credential checks, also on an optional-auth route...
    assert_eq!(
        reason(call(&b, "optional", PEER, Some("demo-key")).await),
        "rate_limited"
    );
    // ...but anonymous access, which checks nothing, still works.
    assert_eq!(reason(call(&b, "optional", PEER, None).await), "admitted");
    assert_eq!(reason(call(&b, "open", PEER, None).await), "admitted");
}

#[tokio::test(start_paused = true)]
async fn the_throttle_is_on_by_default_and_can_be_turned_off() {
    // Default: 30 failures at once, then one a second.
    let b = build(&config("{}"), &PolicyState::new());
    let mut unauthorized = 0;
    for _ in 0..100 {
        if reason(call(&b, "key", PEER, Some("guess")).await) == "unknown_api_key" {
            unauthorized += 1;
        }
    }
    assert_eq!(unauthorized, 30);

    let b = build(&config("{ enabled: false }"), &PolicyState::new());
    for _ in 0..100 {
        assert_eq!(
            reason(call(&b, "key", PEER, Some("guess")).await),
            "unknown_api_key"
        );
    }
}

#[test]
fn bad_numbers_are_config_errors() {
    let errs = validate(&config("{ rate: 0 }")).unwrap_err();
    assert!(
        errs.iter().any(|e| e.path == "auth.failure_limit"),
        "{errs}"
    );
}
