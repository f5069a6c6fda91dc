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
//! (`bench/README.md` records the figures.) To profile one hop under
//! callgrind, `MTLS_CPU_ONLY=plain|plain-h2|mtls|h2` runs only that hop and
//! `MTLS_CPU_REQUESTS=N` sets the measured count (see `bench/README.md`).

mod mesh;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mesh::ca::TestCa;
use mesh::{id, start_meshed, yaml};
use support::{Running, Upstream, client, start_sidecar};

const REQUESTS: u64 = 20_000;

fn requests() -> u64 {
    std::env::var("MTLS_CPU_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(REQUESTS)
}
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
    let n = requests();
    let before = cpu();
    drive(out, n).await;
    (cpu() - before).as_secs_f64() * 1e6 / n as f64
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
    // With `protocol: auto` ALPN picks HTTP/2 between two meshed sidecars.
    let payment = start_meshed(&yaml(app.addr, "", ""), &ca, "payment").await;
    let tls = format!(
        "    protocol: auto\n    tls: {{ identity: {} }}\n",
        id("payment")
    );
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
        "| reuse, mTLS with ALPN h2 (protocol: auto) | | {h2:.1} | {:+.1} % vs plaintext http1 |",
        (h2 / rows[0].1 - 1.0) * 100.0
    );
}

/// One reused hop, chosen by `MTLS_CPU_ONLY`, for a profiler: `plain`
/// (HTTP/1.1), `plain-h2` (HTTP/2 with prior knowledge), `mtls` (HTTP/1.1
/// over mutual TLS) or `h2` (mutual TLS with ALPN h2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run in release with --ignored and MTLS_CPU_ONLY"]
async fn one_hop_for_a_profiler() {
    let Ok(only) = std::env::var("MTLS_CPU_ONLY") else {
        return;
    };
    let app = Upstream::start().await;
    let ca = TestCa::new("mesh");
    let tls = |extra: &str| format!("{extra}    tls: {{ identity: {} }}\n", id("payment"));
    let extra = match only.as_str() {
        "plain" => String::from("    protocol: http1\n"),
        "plain-h2" => String::from("    protocol: http2\n"),
        "mtls" => tls("    protocol: http1\n"),
        "h2" => tls("    protocol: auto\n"),
        other => panic!("MTLS_CPU_ONLY={other}: expected plain, plain-h2, mtls or h2"),
    };
    // As in the table above: plaintext between two sidecars without
    // identities, mutual TLS between two meshed ones.
    let (order, payment) = if only.starts_with("plain") {
        let payment = start_sidecar(&yaml(app.addr, "", "")).await;
        let order = start_sidecar(&yaml(app.addr, "", &service(payment.inbound, &extra))).await;
        (order, payment)
    } else {
        let payment = start_meshed(&yaml(app.addr, "", ""), &ca, "payment").await;
        let services = service(payment.running.inbound, &extra);
        let order = start_meshed(&yaml(app.addr, "", &services), &ca, "order").await;
        (order.running, payment.running)
    };
    let cost = measure(order.outbound).await;
    println!("{only}: {cost:.1} µs CPU/req");
    stop(order).await;
    stop(payment).await;
}

async fn stop(r: Running) {
    r.stop().await;
}
