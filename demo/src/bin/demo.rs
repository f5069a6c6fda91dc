//! `demo`: runs the whole Weir stack locally and prints how to use it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use demo::{Stack, StackOptions};
use proxy_core::telemetry::{LogFormat, init_logging};

/// The collector address tried when `OTEL_EXPORTER_OTLP_ENDPOINT` is unset.
const LOCAL_COLLECTOR: &str = "127.0.0.1:4317";

fn config_dir() -> PathBuf {
    let here = PathBuf::from("config");
    if here.join("gateway.yaml").exists() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn main() -> ExitCode {
    init_logging(
        std::env::var("WEIR_LOG_FORMAT")
            .ok()
            .and_then(|f| f.parse().ok())
            .unwrap_or(LogFormat::Text),
    );
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run())
}

async fn run() -> ExitCode {
    let otlp = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(v) if !v.is_empty() => Some(v),
        _ => tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(LOCAL_COLLECTOR),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|_| format!("http://{LOCAL_COLLECTOR}")),
    };
    let endpoint = otlp.clone();
    // Each component names itself; a process-wide OTEL_SERVICE_NAME would
    // give them all one name, so it is not passed on.
    let env = Arc::new(move |key: &str| match key {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => endpoint.clone(),
        "OTEL_SERVICE_NAME" => None,
        _ => std::env::var(key).ok(),
    });
    let data_dir = std::env::var("WEIR_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("data"));
    let opts = StackOptions {
        config_dir: config_dir(),
        data_dir: data_dir.clone(),
        ephemeral: false,
        env,
    };
    let stack = match Stack::start(opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = stack.wait_ready(Duration::from_secs(30)).await {
        eprintln!("demo: {e}");
        stack.stop().await;
        return ExitCode::FAILURE;
    }
    print_banner(&stack, otlp.as_deref(), &data_dir);
    let _ = tokio::signal::ctrl_c().await;
    println!("\nstopping…");
    let failures = stack.stop().await;
    for (name, err) in &failures {
        eprintln!("{name}: {err}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_banner(stack: &Stack, otlp: Option<&str>, data_dir: &std::path::Path) {
    let gw = stack.gateway;
    println!();
    println!("Weir demo stack is up.");
    println!();
    println!(
        "  gateway        http://{gw}        (admin http://{})",
        stack.gateway_admin
    );
    for (svc, app) in &stack.apps {
        let sc = &stack.sidecars[svc];
        println!(
            "  {svc:<8} app   http://{app}   sidecar inbound {} outbound {} admin {}",
            sc.inbound, sc.outbound, sc.admin
        );
    }
    println!(
        "  identity       issuer https://{}   trust anchor {}",
        stack.identity_issuer,
        stack.trust_anchor.display()
    );
    println!("  data           {}", data_dir.display());
    println!();
    println!("Dashboards (live, read-only):");
    println!(
        "  gateway        http://{}/dashboard   (routes, upstreams, mesh)",
        stack.gateway_admin
    );
    for (svc, sc) in &stack.sidecars {
        println!("  {svc:<14} http://{}/dashboard", sc.admin);
    }
    println!();
    println!("Try:");
    println!("  curl -s -H 'x-api-key: demo-key' http://{gw}/v1/products");
    println!("  curl -s -H 'x-api-key: demo-key' -H 'Api-Version: 2' http://{gw}/products");
    println!("  grpcurl -plaintext -H 'x-api-key: demo-key' {gw} list");
    println!(
        "  curl -s -H 'x-api-key: demo-key' -H 'Idempotency-Key: demo-1' -H 'content-type: application/json' \\\n       -d '{{\"customer_id\":\"c-1\",\"items\":[{{\"product_id\":\"<id from /v1/products>\",\"quantity\":1}}]}}' http://{gw}/v1/orders"
    );
    println!(
        "  curl -s http://{}/metrics | grep weir_requests",
        stack.gateway_admin
    );
    println!();
    match otlp {
        Some(e) => println!(
            "Traces go to {e} (OTLP); open Jaeger at http://localhost:16686 if it runs there."
        ),
        None => println!(
            "Traces are off: start a collector on {LOCAL_COLLECTOR} (deploy/compose.yaml runs Jaeger) or set OTEL_EXPORTER_OTLP_ENDPOINT."
        ),
    }
    println!("Ctrl-C stops everything.");
}
