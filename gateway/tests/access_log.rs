//! The access log: one JSON line per request (target `weir::access`) with
//! the request id, route, upstream, method, path, status and duration.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::*;
use tracing_subscriber::fmt::MakeWriter;

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    /// The access-log lines written so far, parsed.
    fn access_lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "weir::access")
            .collect()
    }
}

// A current-thread runtime: the gateway's tasks run on this thread, so the
// thread-local subscriber sees their events.
#[tokio::test(flavor = "current_thread")]
async fn one_json_line_per_request() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let up = echo_upstream("echo").await;
    let gw = TestGateway::start(&config(&format!(
        "upstreams:\n  echo: {{ endpoints: [{}] }}\nroutes:\n  - name: api\n    match: {{ path_prefix: /api }}\n    upstream: echo\n",
        up.addr
    )))
    .await;
    let ok = get_with(&gw.url("/api/items?x=1"), &[("x-request-id", "log-1")]).await;
    assert_eq!(ok.status, 200);
    let missing = get_with(&gw.url("/nothing"), &[("x-request-id", "log-2")]).await;
    assert_eq!(missing.status, 404);

    // A line is written once its response body has been sent and dropped,
    // which can trail the client's read by a moment.
    let mut lines = capture.access_lines();
    for _ in 0..200 {
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        lines = capture.access_lines();
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    let line = lines
        .iter()
        .find(|l| l["request_id"] == "log-1")
        .expect("line for log-1");
    assert_eq!(line["route"], "api");
    assert_eq!(line["upstream"], "echo");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/api/items");
    assert_eq!(line["status"], 200);
    assert_eq!(line["endpoint"], up.addr.to_string(), "{line}");
    assert_eq!(line["bytes_in"], 0, "{line}");
    assert_eq!(
        line["bytes_out"].as_u64(),
        Some(ok.body.len() as u64),
        "{line}"
    );
    assert!(
        line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{line}"
    );
    assert!(line["timestamp"].is_string(), "{line}");
    assert_eq!(
        line["client"].as_str().map(|c| c.starts_with("127.0.0.1:")),
        Some(true),
        "{line}"
    );

    let line = lines
        .iter()
        .find(|l| l["request_id"] == "log-2")
        .expect("line for log-2");
    assert_eq!(line["status"], 404);
    assert_eq!(line["route"], "");
}
