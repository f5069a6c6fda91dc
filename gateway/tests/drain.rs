//! Graceful shutdown: once triggered, the gateway stops accepting, lets the
//! request in flight finish, closes idle keep-alive connections, cuts what
//! outlives the drain deadline, and `serve` returns.

mod support;

use std::sync::Arc;

use http::Request;
use hyper_util::rt::TokioIo;
use support::*;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

/// An upstream that reports each request's arrival and answers only once
/// released through the semaphore.
async fn gated_upstream() -> (Upstream, mpsc::UnboundedReceiver<()>, Arc<Semaphore>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let up = start_upstream(move |_req| {
        let (tx, gate) = (tx.clone(), g.clone());
        async move {
            let _ = tx.send(());
            let _permit = gate.acquire().await;
            text_response(200, "finished")
        }
    })
    .await;
    (up, rx, gate)
}

fn yaml(up: &Upstream, drain: &str) -> String {
    config(&format!(
        "upstreams:\n  slow: {{ endpoints: [{}] }}\nroutes:\n  - name: slow\n    match: {{ path_prefix: / }}\n    upstream: slow\nshutdown: {{ drain: {drain} }}\n",
        up.addr
    ))
}

#[tokio::test]
async fn in_flight_request_completes_and_new_connections_are_refused() {
    let (up, mut arrived, gate) = gated_upstream().await;
    let mut gw = TestGateway::start(&yaml(&up, "30s")).await;
    let addr = gw.addr();

    // An idle keep-alive connection, opened before the shutdown.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut idle_sender, idle_conn) =
        hyper::client::conn::http1::handshake::<_, TestBody>(TokioIo::new(tcp))
            .await
            .unwrap();
    let idle_conn = tokio::spawn(idle_conn);

    // A request in flight.
    let url = gw.url("/slow");
    let in_flight = tokio::spawn(async move { get(&url).await });
    within("the request reaches the upstream", arrived.recv()).await;

    gw.trigger_shutdown();
    wait_until("new connections are refused", || async {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    // The idle keep-alive connection is closed rather than waited for.
    within("the idle connection is closed", idle_conn)
        .await
        .unwrap()
        .ok();
    assert!(idle_sender.ready().await.is_err());

    gate.add_permits(1);
    let r = within("the in-flight request", in_flight).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "finished");
    gw.join().await;
    assert!(
        TcpStream::connect(gw.admin()).await.is_err(),
        "the admin listener is closed too"
    );
}

#[tokio::test]
async fn drain_deadline_cuts_what_outlives_it() {
    let (up, mut arrived, _gate) = gated_upstream().await;
    let mut gw = TestGateway::start(&yaml(&up, "200ms")).await;
    let url = gw.url("/forever");
    let in_flight = tokio::spawn(async move {
        client()
            .request(Request::get(url).body(empty()).unwrap())
            .await
    });
    within("the request reaches the upstream", arrived.recv()).await;
    gw.trigger_shutdown();
    // `serve` returns although the upstream never answers.
    gw.join().await;
    let res = within("the cut request", in_flight).await.unwrap();
    assert!(
        res.is_err(),
        "the client sees its connection closed: {res:?}"
    );
}
