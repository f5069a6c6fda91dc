//! The real gateway, started in-process, with tracing pointed at an OTLP
//! receiver, and pointed at a closed port.

use std::time::Duration;

use e2e::{HttpClient, Kind, OtlpReceiver, Shape, TempDir, TraceTree, Upstream};
use proxy_core::shutdown;

const PATIENCE: Duration = Duration::from_secs(20);

struct Running {
    http: String,
    admin: String,
    trigger: shutdown::ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

impl Running {
    async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("gateway drains")
            .expect("gateway task");
    }
}

async fn start_gateway(upstream: &Upstream, otlp_endpoint: &str) -> Running {
    start(upstream, otlp_endpoint, "off").await
}

async fn start_gateway_with_log(upstream: &Upstream, otlp_endpoint: &str) -> Running {
    start(upstream, otlp_endpoint, "json").await
}

async fn start(upstream: &Upstream, otlp_endpoint: &str, access_log: &str) -> Running {
    let dir = TempDir::new("gw-tracing").unwrap();
    let config = format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  echo: {{ endpoints: ["{up}"] }}
routes:
  - name: echo
    match: {{ path_prefix: /echo }}
    upstream: echo
telemetry:
  service_name: gateway
  otlp: {{ endpoint: "{otlp_endpoint}", timeout: 2s }}
  queue: {{ max_spans: 32, max_batch: 8, flush_interval: 10ms }}
  access_log: "{access_log}"
shutdown: {{ drain: 1s }}
"#,
        up = upstream.addr()
    );
    let path = dir.write("gateway.yaml", &config).unwrap();
    let gw = gateway::Gateway::bind(path, |_| None)
        .await
        .expect("gateway starts");
    let addrs = gw.local_addrs();
    let (trigger, shutdown) = shutdown::channel();
    let task = tokio::spawn(gw.serve(shutdown));
    Running {
        http: format!("http://{}", addrs["public"]),
        admin: format!("http://{}", addrs["admin"]),
        trigger,
        task,
        _dir: dir,
    }
}

fn metric(text: &str, line_prefix: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(line_prefix)
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no {line_prefix} in metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_spans_reach_the_collector_and_the_upstream_gets_the_context() {
    let rx = OtlpReceiver::grpc().await.unwrap();
    let upstream = Upstream::start().await.unwrap();
    let gw = start_gateway(&upstream, &rx.endpoint()).await;
    let client = HttpClient::default();

    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let reply = client
        .get(
            &format!("{}/echo/x", gw.http),
            &[("traceparent", tp), ("baggage", "k=v")],
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());

    let spans = tokio::time::timeout(
        PATIENCE,
        rx.store()
            .wait_for_trace("4bf92f3577b34da6a3ce929d0e0e4736", 2),
    )
    .await
    .unwrap();
    let tree = TraceTree::new(spans).unwrap();
    tree.assert_shape(
        &Shape::server("gateway")
            .child(Shape::client("gateway"))
            .exact(),
    );
    let root = tree.root().unwrap();
    assert_eq!(root.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    let client_span = tree.find("gateway", Kind::Client)[0];
    assert_eq!(client_span.attr_str("weir.upstream"), Some("echo"));
    assert_eq!(client_span.attr_int("http.response.status_code"), Some(200));

    // The upstream saw the gateway's CLIENT span as its parent, and the baggage.
    let seen = upstream.seen();
    assert_eq!(
        seen[0].headers["traceparent"],
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            client_span.span_id
        )
        .as_str()
    );
    assert_eq!(seen[0].headers["baggage"], "k=v");
    gw.stop().await;
}

/// Collector address is a closed port: every request is still served, and the
/// dropped-span counter on `/metrics` rises.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_costs_spans_not_requests() {
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let upstream = Upstream::start().await.unwrap();
    let gw = start_gateway(&upstream, &format!("http://{closed}")).await;
    let client = HttpClient::default();

    const REQUESTS: usize = 400;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let client = client.clone();
        let url = format!("{}/echo/{i}", gw.http);
        tasks.spawn(async move { client.get(&url, &[]).await.map(|r| r.status) });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap(), 200);
        ok += 1;
    }
    assert_eq!(ok, REQUESTS);
    assert_eq!(upstream.seen().len(), REQUESTS);

    // Each request ends two spans; none can be exported. Once the export task
    // has tried what the queue held, every span is accounted as dropped.
    let metrics_url = format!("{}/metrics", gw.admin);
    let want = 2 * REQUESTS as u64;
    let dropped = tokio::time::timeout(PATIENCE, async {
        loop {
            let text = client.get(&metrics_url, &[]).await.unwrap().text();
            let total = metric(
                &text,
                "weir_telemetry_spans_dropped_total{reason=\"queue_full\"}",
            ) + metric(
                &text,
                "weir_telemetry_spans_dropped_total{reason=\"export_failed\"}",
            );
            if total >= want {
                return (text, total);
            }
            // Export attempts finish on their own (connection refused); wait for the next one.
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("dropped counter reaches the number of spans");
    assert_eq!(dropped.1, want, "{}", dropped.0);
    assert_eq!(metric(&dropped.0, "weir_telemetry_spans_exported_total"), 0);
    gw.stop().await;
}

/// A `MakeWriter` into a shared buffer, to read the access log back.
#[derive(Clone, Default)]
struct LogBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every access-log line carries the request id and the trace id together,
/// and they are the ones the client and the trace see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_join_request_id_and_trace_id() {
    let logs = LogBuf::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter("weir::access=info")
        .with_writer(move || writer.clone())
        .try_init()
        .expect("this test binary installs the only subscriber");

    let rx = OtlpReceiver::grpc().await.unwrap();
    let upstream = Upstream::start().await.unwrap();
    let gw = start_gateway_with_log(&upstream, &rx.endpoint()).await;
    let client = HttpClient::default();
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let reply = client
        .get(&format!("{}/echo/logged", gw.http), &[("traceparent", tp)])
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let request_id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
    let untraced = client
        .get(&format!("{}/echo/fresh", gw.http), &[])
        .await
        .unwrap();
    let untraced_id = untraced.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    gw.stop().await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.contains("weir::access"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let line = lines
        .iter()
        .find(|l| l["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(line["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(line["path"], "/echo/logged");
    // A request without context starts a trace at the gateway; its id is logged too.
    let fresh = lines
        .iter()
        .find(|l| l["request_id"] == untraced_id.as_str())
        .unwrap_or_else(|| panic!("{text}"));
    let trace_id = fresh["trace_id"].as_str().unwrap();
    assert_eq!(trace_id.len(), 32, "{fresh}");
    assert_ne!(trace_id, "0af7651916cd43dd8448eb211c80319c");
    let spans = tokio::time::timeout(PATIENCE, rx.store().wait_for_trace(trace_id, 1))
        .await
        .unwrap();
    assert_eq!(spans[0].service, "gateway");
}
