//! The outbound stack is assembled once per destination when its config is
//! loaded, and once per endpoint when the endpoint joins the set: requests,
//! retries among them, build nothing, and a reload that leaves a destination's
//! section unchanged keeps its stack. Counted through
//! `weir_sidecar_stack_builds_total`, which the construction itself increments.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use support::*;

fn builds(stack: &str, destination: &str) -> String {
    format!("weir_sidecar_stack_builds_total{{destination=\"{destination}\",stack=\"{stack}\"}}")
}

async fn counts(c: &HttpClient, admin: SocketAddr, destination: &str) -> (f64, f64) {
    (
        metric(c, admin, &builds("destination", destination))
            .await
            .unwrap_or(0.0),
        metric(c, admin, &builds("endpoint", destination))
            .await
            .unwrap_or(0.0),
    )
}

#[tokio::test]
async fn requests_and_retries_build_nothing() {
    let app = Upstream::start().await;
    // Each endpoint fails its first call and every third after it, so the
    // retry loop runs through the stack too, whichever endpoint the balancer
    // favours.
    let every_third = |n: u64, _: &http::request::Parts| {
        if n.is_multiple_of(3) {
            Action::Status(503)
        } else {
            Action::Status(200)
        }
    };
    let a = Upstream::with(every_third).await;
    let b = Upstream::with(every_third).await;
    let yaml = config(
        app.addr,
        &[a.addr, b.addr],
        "retry: { backoff: { base: 1ms, max: 2ms } }\ncircuit_breaker: { consecutive_failures: 0 }",
    );
    let sc = start_sidecar(&yaml).await;
    let c = client();
    assert_eq!(counts(&c, sc.admin, "svc").await, (1.0, 2.0));

    const N: u64 = 60;
    for _ in 0..N {
        assert_eq!(get(&c, sc.outbound, "svc").await.status, 200);
    }
    assert!(a.hits() + b.hits() > N, "some calls were retried");
    assert_eq!(
        counts(&c, sc.admin, "svc").await,
        (1.0, 2.0),
        "{N} requests built no stack and no layer"
    );
    sc.stop().await;
}

#[tokio::test]
async fn a_reload_rebuilds_only_the_destinations_whose_section_changed() {
    let app = Upstream::start().await;
    let a = Upstream::start().await;
    let b = Upstream::start().await;
    let dir = std::env::temp_dir().join(format!("weir-sidecar-stack-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sidecar.yaml");
    let base = config(app.addr, &[a.addr], "");
    std::fs::write(&path, &base).unwrap();
    let env: sidecar::Env = Arc::new(|_| None);
    let sc = sidecar::Sidecar::bind_file(&path, env).await.unwrap();
    let (outbound, admin_addr) = (sc.outbound_addr(), sc.admin_addr());
    let (trigger, signal) = proxy_core::shutdown::channel();
    let task = tokio::spawn(sc.serve(signal));
    let c = client();
    assert_eq!(get(&c, outbound, "svc").await.status, 200);
    assert_eq!(counts(&c, admin_addr, "svc").await, (1.0, 1.0));

    // A second service appears; `svc`'s section is unchanged and keeps its stack.
    let with_other = base.replace(
        "services:\n",
        &format!("services:\n  other:\n    endpoints: [{}]\n", b.addr),
    );
    std::fs::write(&path, &with_other).unwrap();
    let ok = send(
        &c,
        admin_addr,
        "POST",
        &admin_addr.to_string(),
        "/reload",
        "",
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(get(&c, outbound, "svc").await.status, 200);
    assert_eq!(get(&c, outbound, "other").await.status, 200);
    assert_eq!(counts(&c, admin_addr, "svc").await, (1.0, 1.0));
    assert_eq!(counts(&c, admin_addr, "other").await, (1.0, 1.0));

    // `svc` changes: its stack is built again, `other`'s is kept.
    let changed = with_other.replace(&format!("[{}]", a.addr), &format!("[{}]", b.addr));
    std::fs::write(&path, &changed).unwrap();
    let ok = send(
        &c,
        admin_addr,
        "POST",
        &admin_addr.to_string(),
        "/reload",
        "",
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(get(&c, outbound, "svc").await.status, 200);
    assert_eq!(counts(&c, admin_addr, "svc").await, (2.0, 2.0));
    assert_eq!(counts(&c, admin_addr, "other").await, (1.0, 1.0));

    trigger.trigger();
    task.await.unwrap().unwrap();
    std::fs::remove_dir_all(dir).ok();
}
