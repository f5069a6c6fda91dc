//! Certificate rotation under load: requests flow from order's sidecar to
//! payment's without pause while both sidecars' certificates rotate several
//! times, the last rotations moving both to a new CA (with a period where
//! both roots are trusted). Not one request may fail. Each rotation is known
//! to have taken effect from the sidecar's own counter of credential
//! versions used (`/state`), never from a sleep.

mod mesh;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use mesh::ca::TestCa;
use mesh::{Meshed, id, start_meshed, yaml};
use proxy_core::identity::{Credentials, SpiffeId};
use rustls_pki_types::CertificateDer;
use support::{HttpClient, Upstream, admin, client, send};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(30);

/// A sidecar's next credentials in a rotation step, `None` to keep its own.
type Next = Option<Arc<Credentials>>;

fn creds(account: &str, issuer: &TestCa, anchors: &[&TestCa]) -> Arc<Credentials> {
    let leaf = issuer.leaf(&id(account));
    Arc::new(Credentials {
        id: SpiffeId::parse(&id(account)).unwrap(),
        chain: leaf.chain,
        key: leaf.key,
        trust_anchors: anchors
            .iter()
            .map(|ca| CertificateDer::clone(&ca.root))
            .collect(),
        not_after: SystemTime::now() + Duration::from_secs(3600),
    })
}

async fn versions_used(c: &HttpClient, s: &Meshed) -> u64 {
    let state = admin(c, s.running.admin, "/state").await.json();
    state["identity"]["versions_used"].as_u64().unwrap()
}

/// Waits until `n` counts `more` beyond `from`, failing at the deadline.
async fn wait_for(what: &str, mut n: impl AsyncFnMut() -> u64, at_least: u64) {
    let until = Instant::now() + DEADLINE;
    loop {
        let now = n().await;
        if now >= at_least {
            return;
        }
        assert!(Instant::now() < until, "{what}: {now} < {at_least}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_under_load_fail_no_request() {
    let old = TestCa::new("mesh");
    let new = TestCa::new("mesh-next");
    let app = Upstream::start().await;
    let payment = start_meshed(&yaml(app.addr, "", ""), &old, "payment").await;
    // `payment`: HTTP/1.1 and no idle connections, so every request is a new
    // handshake; `payment-h2`: one HTTP/2 connection (ALPN) opened before
    // the rotations, which must carry requests through all of them.
    let services = format!(
        "  payment:\n    endpoints: [{p}]\n    protocol: http1\n    pool: {{ max_idle_per_endpoint: 0 }}\n    retry: {{ max_attempts: 1 }}\n    tls: {{ identity: {pid} }}\n  payment-h2:\n    endpoints: [{p}]\n    retry: {{ max_attempts: 1 }}\n    tls: {{ identity: {pid} }}\n",
        p = payment.running.inbound,
        pid = id("payment"),
    );
    let order = start_meshed(&yaml(app.addr, "", &services), &old, "order").await;
    let out = order.running.outbound;

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let c = client();
            let host = if worker % 2 == 0 {
                "payment"
            } else {
                "payment-h2"
            };
            while !stop.load(Ordering::Relaxed) {
                let got = send(&c, out, "GET", host, "/", "").await;
                if got.status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    eprintln!("{host}: {} {}", got.status, got.body);
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let c = client();
    let ok_now = || {
        let ok = ok.clone();
        async move || ok.load(Ordering::Relaxed)
    };
    wait_for("requests before rotating", ok_now(), 50).await;

    // (payment's next credentials, order's next credentials)
    let steps: [(Next, Next); 5] = [
        (
            Some(creds("payment", &old, &[&old])),
            Some(creds("order", &old, &[&old])),
        ),
        (
            Some(creds("payment", &old, &[&old, &new])),
            Some(creds("order", &old, &[&old, &new])),
        ),
        (Some(creds("payment", &new, &[&old, &new])), None),
        (None, Some(creds("order", &new, &[&old, &new]))),
        (
            Some(creds("payment", &new, &[&new])),
            Some(creds("order", &new, &[&new])),
        ),
    ];
    for (i, (p, o)) in steps.into_iter().enumerate() {
        let before = (
            versions_used(&c, &payment).await,
            versions_used(&c, &order).await,
        );
        let (p_sent, o_sent) = (p.is_some(), o.is_some());
        if let Some(p) = p {
            payment.creds.send_replace(Some(p));
        }
        if let Some(o) = o {
            order.creds.send_replace(Some(o));
        }
        if p_sent {
            wait_for(
                &format!("step {i}: payment uses its new certificate"),
                async || versions_used(&c, &payment).await,
                before.0 + 1,
            )
            .await;
        }
        if o_sent {
            wait_for(
                &format!("step {i}: order uses its new certificate"),
                async || versions_used(&c, &order).await,
                before.1 + 1,
            )
            .await;
        }
        let seen = ok.load(Ordering::Relaxed);
        wait_for(&format!("step {i}: requests after"), ok_now(), seen + 50).await;
        assert_eq!(failed.load(Ordering::Relaxed), 0, "after step {i}");
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) >= 300);
    assert_eq!(versions_used(&c, &payment).await, 5);
    assert_eq!(versions_used(&c, &order).await, 5);
}
