//! A gRPC call through the gateway and the sidecar's inbound side to a real
//! tonic server: the failed call's trailers reach the client intact across
//! both proxies, and both proxies' spans follow the OpenTelemetry RPC
//! conventions with the call's status.

use std::time::Duration;

use e2e::grpc_probe::{Call, ProbeClient, ProbeServer, call};
use e2e::{Kind, OtlpReceiver, TempDir, TraceTree};
use proxy_core::shutdown;
use sidecar::{Sidecar, SidecarConfig};
use tonic::{Code, Request};

const PATIENCE: Duration = Duration::from_secs(20);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_rpc_spans_across_gateway_and_sidecar() {
    let rx = OtlpReceiver::grpc().await.unwrap();
    let app = ProbeServer::start().await;
    let telemetry = |name: &str| {
        format!(
            "telemetry:\n  service_name: {name}\n  otlp: {{ endpoint: \"{}\", timeout: 2s }}\n  queue: {{ max_spans: 32, max_batch: 4, flush_interval: 10ms }}\n",
            rx.endpoint()
        )
    };

    let sc_yaml = format!(
        "service: probe\ninbound: {{ address: 127.0.0.1:0, app: {app}, protocol: http2 }}\noutbound: {{ address: 127.0.0.1:0 }}\nadmin: {{ address: 127.0.0.1:0 }}\n{}shutdown: {{ drain: 1s }}\n",
        telemetry("probe-sidecar"),
        app = app.addr
    );
    let cfg = SidecarConfig::from_yaml(&sc_yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let sc = Sidecar::bind(cfg).await.unwrap();
    let inbound = sc.inbound_addr();
    let (sc_trigger, sc_signal) = shutdown::channel();
    let sc_task = tokio::spawn(sc.serve(sc_signal));

    let dir = TempDir::new("gw-grpc-trace").unwrap();
    let gw_yaml = format!(
        "listeners: [{{ name: public, address: \"127.0.0.1:0\" }}]\nadmin: {{ address: \"127.0.0.1:0\" }}\nupstreams:\n  probe: {{ endpoints: [\"{inbound}\"], protocol: http2 }}\nroutes:\n  - name: probe\n    match: {{ grpc: {{ service: weir.test.v1.Probe }} }}\n    upstream: probe\n{}shutdown: {{ drain: 1s }}\n",
        telemetry("gateway")
    );
    let gw = gateway::Gateway::bind(dir.write("gateway.yaml", &gw_yaml).unwrap(), |_| None)
        .await
        .unwrap();
    let url = format!("http://{}", gw.local_addrs()["public"]);
    let (gw_trigger, gw_signal) = shutdown::channel();
    let gw_task = tokio::spawn(gw.serve(gw_signal));

    let mut c = ProbeClient::connect(url).await;
    let mut req = Request::new(Call {
        code: Code::NotFound as u32,
        ..call("traced")
    });
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE}-00f067aa0ba902b7-01").parse().unwrap(),
    );
    let err = c.unary(req).await.unwrap_err();
    // The upstream's trailers, through both proxies.
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "unary asked for NotFound");

    let spans = tokio::time::timeout(PATIENCE, rx.store().wait_for_trace(TRACE, 3))
        .await
        .expect("three spans");
    let tree = TraceTree::new(spans).unwrap();
    for service in ["gateway", "probe-sidecar"] {
        let server = tree.find(service, Kind::Server)[0];
        assert_eq!(server.name, "weir.test.v1.Probe/Unary", "{}", tree.render());
        assert_eq!(server.attr_str("rpc.system"), Some("grpc"));
        assert_eq!(server.attr_str("rpc.service"), Some("weir.test.v1.Probe"));
        assert_eq!(server.attr_str("rpc.method"), Some("Unary"));
        assert_eq!(server.attr_int("rpc.grpc.status_code"), Some(5));
        // NOT_FOUND is the application's answer, not a server error.
        assert_eq!(server.attr_str("error.type"), None);
    }

    gw_trigger.trigger();
    sc_trigger.trigger();
    tokio::time::timeout(PATIENCE, gw_task)
        .await
        .unwrap()
        .unwrap();
    let _ = tokio::time::timeout(PATIENCE, sc_task).await.unwrap();
}
