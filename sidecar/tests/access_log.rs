//! The sidecar's access lines have the gateway's format (proxy-core's
//! `PendingLine`): one JSON line per request, inbound and outbound, written
//! when the response body has gone out, with the request id, client, method,
//! path, status, upstream, duration and the body sizes.

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
    fn access_lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "weir::access")
            .collect()
    }

    /// Waits (bounded) until `n` lines are written: a line follows the body's
    /// drop on the server side, which can trail the client's read.
    async fn wait_lines(&self, n: usize) -> Vec<Value> {
        let mut lines = self.access_lines();
        for _ in 0..200 {
            if lines.len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            lines = self.access_lines();
        }
        lines
    }
}

fn line<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["request_id"] == id)
        .unwrap_or_else(|| panic!("no line for {id}: {lines:?}"))
}

async fn send_with_id(
    c: &HttpClient,
    to: std::net::SocketAddr,
    host: &str,
    id: &str,
    body: &str,
) -> u16 {
    let req = http::Request::post(format!("http://{to}/items"))
        .header("host", host)
        .header("x-request-id", id)
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let status = resp.status().as_u16();
    http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    status
}

// A current-thread runtime: the sidecar's tasks run on this thread, so the
// thread-local subscriber sees their events.
#[tokio::test(flavor = "current_thread")]
async fn inbound_and_outbound_lines_share_the_gateways_format() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = Upstream::start().await;
    let up = Upstream::start().await;
    let sc = start_sidecar(&config(app.addr, &[up.addr], "")).await;
    let c = client();
    assert_eq!(
        send_with_id(&c, sc.outbound, "svc", "out-1", "hello").await,
        200
    );
    assert_eq!(
        send_with_id(&c, sc.inbound, "test", "in-1", "hi").await,
        200
    );
    assert_eq!(
        send_with_id(&c, sc.outbound, "nowhere", "out-2", "").await,
        404
    );

    let lines = capture.wait_lines(3).await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (id, upstream, bytes_in) in [("out-1", "svc", 5), ("in-1", "app", 2)] {
        let l = line(&lines, id);
        assert_eq!(l["upstream"], upstream, "{l}");
        assert_eq!(l["method"], "POST", "{l}");
        assert_eq!(l["path"], "/items", "{l}");
        assert_eq!(l["status"], 200, "{l}");
        assert_eq!(l["bytes_in"], bytes_in, "{l}");
        assert!(l["bytes_out"].as_u64().is_some(), "{l}");
        assert!(l["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{l}");
        assert_eq!(
            l["client"].as_str().map(|c| c.starts_with("127.0.0.1:")),
            Some(true),
            "{l}"
        );
    }
    let unknown = line(&lines, "out-2");
    assert_eq!(unknown["status"], 404);
    assert_eq!(unknown["upstream"], "");
    assert!(
        unknown["bytes_out"].as_u64().is_some_and(|n| n > 0),
        "{unknown}"
    );
    sc.stop().await;
}

/// A gRPC call's line carries its `grpc-status`, from the trailers or from the
/// headers of a trailers-only answer (the HTTP status is 200 either way).
#[tokio::test(flavor = "current_thread")]
async fn grpc_lines_carry_the_grpc_status() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = Upstream::with(|_, _| Action::GrpcStatus(7)).await;
    let up = Upstream::with(|_, _| Action::GrpcTrailers(5)).await;
    let sc = start_sidecar(&config(app.addr, &[up.addr], "protocol: http2")).await;
    // The outbound side picks the destination by `Host` (HTTP/1.1 here; an
    // HTTP/2 client's `:authority` is the sidecar's own address, which names
    // no destination and is refused in gRPC terms).
    let calls = [
        (client(), sc.outbound, "svc", "g-out"),
        (h2_client(), sc.inbound, "test", "g-in"),
        (h2_client(), sc.outbound, "svc", "g-unknown"),
    ];
    for (c, to, host, id) in calls {
        let req = http::Request::post(format!("http://{to}/pkg.Svc/Method"))
            .header("host", host)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("x-request-id", id)
            .body(http_body_util::Full::new(bytes::Bytes::from_static(&[
                0, 0, 0, 0, 0,
            ])))
            .unwrap();
        let resp = c.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap();
    }
    let lines = capture.wait_lines(3).await;
    assert_eq!(line(&lines, "g-out")["grpc_status"], 5, "{lines:?}");
    // UNIMPLEMENTED: the sidecar's own `unknown-destination` refusal.
    assert_eq!(line(&lines, "g-unknown")["grpc_status"], 12, "{lines:?}");
    assert_eq!(line(&lines, "g-unknown")["status"], 200, "{lines:?}");
    assert_eq!(line(&lines, "g-in")["grpc_status"], 7, "{lines:?}");
    sc.stop().await;
}
