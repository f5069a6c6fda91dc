//! Unary gRPC calls to catalog (`GetProduct`) three ways in one run: straight
//! to the app, through catalog's sidecar inbound, and through the gateway
//! (auth, routing, sidecar), over the demo stack started in-process.
//!
//! A bounded client: `CONCURRENCY` tasks share one HTTP/2 connection per
//! target and each makes calls back to back for `DURATION` after a warm-up;
//! the figures are calls per second and the p50/p99 of the call latency.
//! The gateway's rate limits and access log are off for the run (a copy of
//! `config/`); everything else is the demo's configuration.
//!
//! `cargo run --release -p e2e --example grpc_bench [concurrency] [seconds]`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog::grpc::pb;
use catalog::grpc::pb::catalog_service_client::CatalogServiceClient;
use tonic::transport::Channel;

/// Copies `config/` with the gateway's default rate limits turned off.
fn bench_config(into: &Path) -> std::io::Result<()> {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
    std::fs::create_dir_all(into.join("keys"))?;
    for entry in std::fs::read_dir(&source)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), into.join(entry.file_name()))?;
        }
    }
    for entry in std::fs::read_dir(source.join("keys"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), into.join("keys").join(entry.file_name()))?;
    }
    let gateway = into.join("gateway.yaml");
    let text = std::fs::read_to_string(&gateway)?;
    let lifted = text
        .replace("  default: [per-consumer, global]", "  default: []")
        .replace("access_log: json", "access_log: off");
    assert_eq!(
        lifted.matches(": []").count() + lifted.matches("access_log: off").count(),
        text.matches(": []").count() + text.matches("access_log: off").count() + 2,
        "the gateway's rate-limit default or access log moved"
    );
    std::fs::write(gateway, lifted)
}

struct Figures {
    calls: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure(target: &str, id: &str, concurrency: usize, run: Duration) -> Figures {
    let channel = Channel::from_shared(target.to_owned())
        .expect("target url")
        .connect()
        .await
        .expect("connect");
    let call = |client: CatalogServiceClient<Channel>, id: String| async move {
        let mut client = client;
        let mut request = tonic::Request::new(pb::GetProductRequest { id });
        request
            .metadata_mut()
            .insert("x-api-key", "demo-key".parse().expect("ascii"));
        let started = Instant::now();
        client.get_product(request).await.expect("GetProduct");
        started.elapsed()
    };
    let client = CatalogServiceClient::new(channel);
    // Warm-up: connections, pools, caches.
    for _ in 0..200 {
        call(client.clone(), id.to_owned()).await;
    }
    let until = Instant::now() + run;
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let id = id.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    latencies.push(call(client.clone(), id.clone()).await);
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("bench task"));
    }
    let elapsed = started.elapsed();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Figures {
        calls: all.len(),
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let dir = e2e::TempDir::new("grpc-bench").expect("temp dir");
    let config = dir.path().join("config");
    bench_config(&config).expect("bench config");
    let env: demo::EnvLookup = Arc::new(|_: &str| None);
    let stack = demo::Stack::start(demo::StackOptions {
        config_dir: config,
        data_dir: dir.path().join("data"),
        ephemeral: true,
        env,
    })
    .await
    .expect("stack starts");
    stack
        .wait_ready(Duration::from_secs(30))
        .await
        .expect("stack ready");

    let direct = format!("http://{}", stack.apps["catalog"]);
    let mut client = CatalogServiceClient::connect(direct.clone())
        .await
        .expect("catalog");
    let mut products = client
        .list_products(pb::ListProductsRequest::default())
        .await
        .expect("listing")
        .into_inner();
    let id = products
        .message()
        .await
        .expect("a product")
        .expect("the demo catalog is seeded")
        .id;

    println!(
        "GetProduct, {concurrency} concurrent calls on one HTTP/2 connection, {seconds}s each"
    );
    println!("| path | calls/s | p50 | p99 |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, target) in [
        ("direct to catalog", direct),
        (
            "catalog's sidecar (inbound)",
            format!("http://{}", stack.sidecars["catalog"].inbound),
        ),
        (
            "gateway → catalog's sidecar",
            format!("http://{}", stack.gateway),
        ),
    ] {
        let f = measure(&target, &id, concurrency, Duration::from_secs(seconds)).await;
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms |  ({} calls)",
            f.per_second,
            f.p50.as_secs_f64() * 1e3,
            f.p99.as_secs_f64() * 1e3,
            f.calls
        );
    }
    stack.stop().await;
}
