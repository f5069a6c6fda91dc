//! CPU per request of a sidecar-to-sidecar hop, plaintext against mutual TLS,
//! with connection reuse and with a new connection per request. Everything
//! (load, two sidecars, the app) runs in this process, so the figures are
//! whole-process CPU per request: the difference between two rows is what
//! TLS adds. A measurement, not a check: run it in release,
//!
//! ```text
//! cargo test --release -p sidecar --test mtls_cpu -- --ignored --nocapture
//! ```
//!
//! (`bench/README.md` records the figures.)

mod mesh;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mesh::ca::TestCa;
use mesh::{id, start_meshed, yaml};
use support::{Running, Upstream, client, start_sidecar};

const REQUESTS: u64 = 20_000;
const CONCURRENCY: u64 = 8;

fn cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    #[allow(unsafe_code)]
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU microseconds per request through `out` (the caller's outbound).
async fn measure(out: std::net::SocketAddr) -> f64 {
    // Warm-up: pools, handshakes, allocator.
    drive(out, 1000).await;
    let before = cpu();
    drive(out, REQUESTS).await;
    (cpu() - before).as_secs_f64() * 1e6 / REQUESTS as f64
}

async fn drive(out: std::net::SocketAddr, n: u64) {
    let left = Arc::new(AtomicU64::new(n));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let left = left.clone();
        tasks.push(tokio::spawn(async move {
            let c = client();
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1))
                .is_ok()
            {
                let got = support::get(&c, out, "payment").await;
                assert_eq!(got.status, 200, "{}", got.body);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn service(payment: std::net::SocketAddr, extra: &str) -> String {
    format!("  payment:\n    endpoints: [{payment}]\n    retry: {{ max_attempts: 1 }}\n{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run in release with --ignored"]
async fn cpu_per_request_plaintext_and_mtls() {
    let app = Upstream::start().await;
    let ca = TestCa::new("mesh");
    let mut rows = Vec::new();
    let variants = [
        ("reuse, http1", "    protocol: http1\n"),
        (
            "new connection per request, http1",
            "    protocol: http1\n    pool: { max_idle_per_endpoint: 0 }\n",
        ),
    ];
    for (what, extra) in variants {
        // Plaintext pair.
        let payment = start_sidecar(&yaml(app.addr, "", "")).await;
        let order = start_sidecar(&yaml(app.addr, "", &service(payment.inbound, extra))).await;
        let plain = measure(order.outbound).await;
        stop(order).await;
        stop(payment).await;
        // Mutual TLS pair (payment allows any identity of the trust domain).
        let payment = start_meshed(&yaml(app.addr, "", ""), &ca, "payment").await;
        let tls = format!("{extra}    tls: {{ identity: {} }}\n", id("payment"));
        let order = start_meshed(
            &yaml(app.addr, "", &service(payment.running.inbound, &tls)),
            &ca,
            "order",
        )
        .await;
        let mtls = measure(order.running.outbound).await;
        stop(order.running).await;
        stop(payment.running).await;
        rows.push((what, plain, mtls));
    }
    // Between two meshed sidecars the default: ALPN picks HTTP/2.
    let payment = start_meshed(&yaml(app.addr, "", ""), &ca, "payment").await;
    let tls = format!("    tls: {{ identity: {} }}\n", id("payment"));
    let order = start_meshed(
        &yaml(app.addr, "", &service(payment.running.inbound, &tls)),
        &ca,
        "order",
    )
    .await;
    let h2 = measure(order.running.outbound).await;
    stop(order.running).await;
    stop(payment.running).await;

    println!("| hop | plaintext µs CPU/req | mTLS µs CPU/req | added |");
    println!("| --- | --- | --- | --- |");
    for (what, plain, mtls) in rows.iter() {
        println!(
            "| {what} | {plain:.1} | {mtls:.1} | {:+.1} % |",
            (mtls / plain - 1.0) * 100.0
        );
    }
    println!(
        "| reuse, mTLS with ALPN h2 (default) | | {h2:.1} | {:+.1} % vs plaintext http1 |",
        (h2 / rows[0].1 - 1.0) * 100.0
    );
}

async fn stop(r: Running) {
    r.stop().await;
}
