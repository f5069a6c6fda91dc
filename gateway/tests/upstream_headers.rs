//! The upstream request carries no empty header the gateway wrote: with
//! tracing on, an incoming `traceparent` without trace state yields
//! `traceparent` out and no `tracestate: ` (the W3C propagator writes one
//! even when the state is empty).

mod support;

use support::*;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn no_empty_trace_headers_reach_the_upstream() {
    let up = echo_upstream("svc").await;
    // Spans go to a port nobody listens on: exporting fails quietly in the
    // background, while propagation works as with a live collector.
    let gw = TestGateway::start(&config(&format!(
        "upstreams:
  svc: {{ endpoints: [{}] }}
routes:
  - name: r
    match: {{ path_prefix: / }}
    upstream: svc
telemetry:
  otlp: {{ endpoint: \"http://{}\", timeout: 100ms }}
  queue: {{ max_spans: 8, max_batch: 8, flush_interval: 10ms }}
",
        up.addr,
        closed_port()
    )))
    .await;

    let r = get_with(&gw.url("/x"), &[("traceparent", TRACEPARENT)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.seen1("traceparent").expect("traceparent is propagated");
    assert!(
        seen.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{seen}"
    );
    assert!(
        r.seen("tracestate").is_empty(),
        "no empty tracestate: {}",
        r.text()
    );
    let doc = r.json();
    for (name, values) in doc["headers"].as_object().expect("headers") {
        for v in values.as_array().expect("values") {
            assert_ne!(v.as_str(), Some(""), "empty {name} upstream");
        }
    }
}
