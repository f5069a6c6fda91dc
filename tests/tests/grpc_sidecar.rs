//! gRPC through the real sidecar with a real tonic client and server: the
//! outcome in `grpc-status` drives retries and the breaker, streams are
//! retried only before their first message, and calls through the inbound
//! side keep their messages and trailers.

use std::net::SocketAddr;
use std::time::Duration;

use e2e::grpc_probe::{Call, ProbeClient, ProbeServer, call};
use proxy_core::shutdown;
use sidecar::{Sidecar, SidecarConfig};
use tonic::{Code, Request};

const PATIENCE: Duration = Duration::from_secs(20);

struct Sc {
    inbound: SocketAddr,
    outbound: SocketAddr,
    admin: SocketAddr,
    trigger: shutdown::ShutdownTrigger,
    task: tokio::task::JoinHandle<Result<(), sidecar::SidecarError>>,
}

impl Sc {
    /// A sidecar whose app is `app` and whose one destination `svc` is
    /// `endpoints`, both spoken to in HTTP/2; `svc_extra` goes under `svc`.
    async fn start(app: SocketAddr, endpoints: &[SocketAddr], svc_extra: &str) -> Sc {
        let eps: Vec<String> = endpoints.iter().map(|e| e.to_string()).collect();
        let yaml = format!(
            "service: test
inbound: {{ address: 127.0.0.1:0, app: {app}, protocol: http2, timeout: 10s }}
outbound: {{ address: 127.0.0.1:0 }}
services:
  svc:
    endpoints: [{eps}]
    protocol: http2
{svc_extra}
admin: {{ address: 127.0.0.1:0 }}
shutdown: {{ drain: 1s }}
",
            eps = eps.join(", ")
        );
        let cfg = SidecarConfig::from_yaml(&yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
        let sc = Sidecar::bind(cfg).await.unwrap();
        let (inbound, outbound, admin) = (sc.inbound_addr(), sc.outbound_addr(), sc.admin_addr());
        let (trigger, signal) = shutdown::channel();
        let task = tokio::spawn(sc.serve(signal));
        Sc {
            inbound,
            outbound,
            admin,
            trigger,
            task,
        }
    }

    /// A client of the destination `svc` through the outbound side.
    async fn outbound_client(&self) -> ProbeClient {
        ProbeClient::connect_as(format!("http://{}", self.outbound), Some("http://svc")).await
    }

    async fn metrics(&self) -> String {
        e2e::HttpClient::default()
            .get(&format!("http://{}/metrics", self.admin), &[])
            .await
            .unwrap()
            .text()
    }

    async fn stop(self) {
        self.trigger.trigger();
        let _ = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("sidecar drains");
    }
}

#[tokio::test]
async fn unavailable_is_retried_and_not_found_is_not() {
    let up = ProbeServer::start().await;
    let sc = Sc::start(
        up.addr,
        &[up.addr],
        "    retry: { backoff: { base: 1ms, max: 5ms } }",
    )
    .await;
    let mut c = sc.outbound_client().await;

    // Twice UNAVAILABLE, then served: the third try answers (3 tries by default).
    up.state.plan(&[Code::Unavailable, Code::Unavailable]);
    let reply = c.unary(Request::new(call("again"))).await.unwrap();
    assert_eq!(reply.get_ref().text, "again");
    assert_eq!(up.state.calls(), 3);

    // NOT_FOUND is the application's answer: one try, passed on as it is.
    up.state.plan(&[Code::NotFound]);
    let err = c.unary(Request::new(call("missing"))).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(up.state.calls(), 4);

    // A call still UNAVAILABLE after every try ends with the server's status.
    up.state.plan(&[Code::Unavailable; 3]);
    let err = c.unary(Request::new(call("down"))).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.message(), "planned Unavailable");
    assert_eq!(up.state.calls(), 7);

    let m = sc.metrics().await;
    for line in [
        "weir_sidecar_retries_total{destination=\"svc\",reason=\"grpc_14\"} 4",
        "weir_sidecar_grpc_responses_total{direction=\"outbound\",destination=\"svc\",grpc_status=\"OK\"} 1",
        "weir_sidecar_grpc_responses_total{direction=\"outbound\",destination=\"svc\",grpc_status=\"NOT_FOUND\"} 1",
        "weir_sidecar_grpc_responses_total{direction=\"outbound\",destination=\"svc\",grpc_status=\"UNAVAILABLE\"} 1",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    sc.stop().await;
}

#[tokio::test]
async fn streams_are_retried_only_before_their_first_message() {
    let up = ProbeServer::start().await;
    let sc = Sc::start(
        up.addr,
        &[up.addr],
        "    retry: { backoff: { base: 1ms, max: 5ms } }",
    )
    .await;
    let mut c = sc.outbound_client().await;

    // Refused before any message: retried, and the stream then flows.
    up.state.plan(&[Code::Unavailable]);
    let mut s = c
        .stream(Request::new(Call {
            count: 2,
            ..call("s")
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.message().await.unwrap().unwrap().seq, 0);
    assert_eq!(s.message().await.unwrap().unwrap().seq, 1);
    assert!(s.message().await.unwrap().is_none());
    assert_eq!(up.state.calls(), 2);

    // UNAVAILABLE after a message was delivered: the call is committed.
    let mut s = c
        .stream(Request::new(Call {
            count: 1,
            code: Code::Unavailable as u32,
            ..call("late")
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.message().await.unwrap().unwrap().seq, 0);
    assert_eq!(s.message().await.unwrap_err().code(), Code::Unavailable);
    assert_eq!(up.state.calls(), 3, "not retried");
    sc.stop().await;
}

#[tokio::test]
async fn the_breaker_counts_unavailable_but_not_not_found() {
    let a = ProbeServer::start().await;
    let b = ProbeServer::start().await;
    let sc = Sc::start(
        a.addr,
        &[a.addr, b.addr],
        "    retry: { max_attempts: 1 }
    circuit_breaker: { consecutive_failures: 2, ejection: { base: 1m, max: 1m, max_percent: 50 } }",
    )
    .await;
    let mut c = sc.outbound_client().await;
    a.state.always(Some(Code::NotFound));
    b.state.always(Some(Code::NotFound));
    for _ in 0..6 {
        let err = c.unary(Request::new(call("nf"))).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
    let m = sc.metrics().await;
    assert!(
        !m.contains("weir_sidecar_breaker_transitions_total{"),
        "NOT_FOUND ejected an endpoint:\n{m}"
    );

    // The same number of UNAVAILABLE answers ejects an endpoint.
    a.state.always(Some(Code::Unavailable));
    b.state.always(Some(Code::Unavailable));
    for _ in 0..6 {
        let err = c.unary(Request::new(call("down"))).await.unwrap_err();
        assert!(matches!(err.code(), Code::Unavailable), "{err:?}");
    }
    let m = sc.metrics().await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("weir_sidecar_breaker_transitions_total{")
                && l.contains("to=\"open\"")),
        "UNAVAILABLE did not eject:\n{m}"
    );
    sc.stop().await;
}

#[tokio::test]
async fn calls_through_the_inbound_side_keep_messages_and_trailers() {
    let app = ProbeServer::start().await;
    let sc = Sc::start(app.addr, &[app.addr], "").await;
    let mut c = ProbeClient::connect(format!("http://{}", sc.inbound)).await;
    assert_eq!(
        c.unary(Request::new(call("in")))
            .await
            .unwrap()
            .get_ref()
            .text,
        "in"
    );
    let mut s = c
        .stream(Request::new(Call {
            count: 2,
            code: Code::FailedPrecondition as u32,
            ..call("in")
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.message().await.unwrap().unwrap().seq, 0);
    assert_eq!(s.message().await.unwrap().unwrap().seq, 1);
    let end = s.message().await.unwrap_err();
    assert_eq!(end.code(), Code::FailedPrecondition);
    assert_eq!(end.message(), "stream asked for FailedPrecondition");

    // The deadline of the call reaches the app, capped by the inbound timeout.
    let mut req = Request::new(call("deadline"));
    req.set_timeout(Duration::from_secs(3600));
    let reply = c.unary(req).await.unwrap();
    assert_eq!(reply.get_ref().grpc_timeout, "10000000u");

    let m = sc.metrics().await;
    let line = "weir_sidecar_grpc_responses_total{direction=\"inbound\",destination=\"test\",grpc_status=\"FAILED_PRECONDITION\"} 1";
    assert!(m.contains(line), "{line} in\n{m}");
    sc.stop().await;
}
