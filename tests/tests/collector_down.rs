//! With the collector unreachable, ending spans never waits on it: spans are
//! dropped and counted, and the counter is visible as a Prometheus metric.

use std::time::Duration;

use proxy_core::config::parse_yaml;
use proxy_core::telemetry::{ClientSpanInfo, ServerSpanInfo, Telemetry, TelemetryConfig};

const PATIENCE: Duration = Duration::from_secs(20);

/// A port nothing listens on: bind, note the port, close.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

async fn run(protocol: &str) {
    let port = closed_port().await;
    let cfg: TelemetryConfig = parse_yaml(&format!(
        "otlp: {{ endpoint: 'http://127.0.0.1:{port}', protocol: {protocol}, timeout: 2s }}\nqueue: {{ max_spans: 64, max_batch: 16 }}\n"
    ))
    .unwrap();
    let t = Telemetry::init(&cfg.resolve("telemetry", "gateway", "1", |_| None).unwrap()).unwrap();

    // Single-threaded runtime: the export task cannot run during this loop, so
    // if ending a span waited on the queue or the collector, it would hang.
    const N: u64 = 5_000;
    for i in 0..N / 2 {
        let req = http::Request::builder()
            .uri(format!("/v1/products/{i}"))
            .body(())
            .unwrap();
        let server = t.server_span(&req, ServerSpanInfo::default());
        let (mut out, ()) = req.into_parts();
        let client = t.client_span(server.context(), &mut out, ClientSpanInfo::default());
        drop((client, server));
    }
    assert!(
        t.stats().dropped_queue_full.get() >= N - 64,
        "{:?}",
        t.stats()
    );

    // What fit in the queue is attempted, fails, and is counted too.
    assert!(t.flush(PATIENCE).await);
    assert_eq!(t.stats().dropped(), N);
    assert_eq!(t.stats().exported(), 0);
    assert_eq!(
        t.stats().dropped_export_failed.get(),
        N - t.stats().dropped_queue_full.get()
    );

    let mut reg = prometheus_client::registry::Registry::default();
    t.register_metrics(&mut reg);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
    let full = t.stats().dropped_queue_full.get();
    assert!(
        text.contains(&format!(
            "weir_telemetry_spans_dropped_total{{reason=\"queue_full\"}} {full}"
        )),
        "{text}"
    );
    assert!(t.shutdown(PATIENCE).await);
}

#[tokio::test]
async fn grpc_collector_down_drops_and_counts() {
    run("grpc").await;
}

#[tokio::test]
async fn http_collector_down_drops_and_counts() {
    run("http").await;
}
