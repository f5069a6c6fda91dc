//! A mutual TLS hop between two network namespaces, captured on the wire.
//!
//! "payment" runs in one namespace (its sidecar's inbound on the veth
//! address, its app on loopback); "order" runs in the other (its app is this
//! test, calling its sidecar's outbound). `tcpdump` on the pod's end of the
//! veth records the hop. The requests carry a marker in their path and
//! headers that must never appear on the wire; one control request, to a
//! destination set to `plaintext`, shows that the capture does see plaintext
//! HTTP when there is some.
//!
//! Needs root, `ip` and `tcpdump`; without them it is skipped with a printed
//! reason (and fails under `CI=true`).

#![allow(unsafe_code)]

mod mesh;
mod netns;
mod support;

use std::sync::Arc;
use std::sync::mpsc;

use mesh::ca::TestCa;
use mesh::id;
use netns::capture::{Capture, seen_in};
use netns::{Net, enter, have, skip};
use proxy_core::identity::{Credentials, credentials_channel};
use proxy_core::shutdown;
use sidecar::{Sidecar, SidecarConfig};
use support::{Upstream, client, send};

const INBOUND: u16 = 4143;
const MARKER: &str = "MTLS-SECRET-7f3a";
const CONTROL: &str = "CONTROL-PLAINTEXT-91c2";
const REQUESTS: usize = 20;

fn runtime() -> tokio::runtime::Runtime {
    // One thread: every socket is made on the thread that entered the namespace.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn sidecar_yaml(inbound: &str, app: std::net::SocketAddr, rest: &str) -> String {
    format!(
        "service: test\ninbound:\n  address: {inbound}\n  app: {app}\n{rest}outbound:\n  address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\nshutdown: {{ drain: 1s }}\n"
    )
}

async fn start(
    yaml: String,
    creds: Arc<Credentials>,
) -> (Sidecar, proxy_core::identity::CredentialsSender) {
    let (tx, rx) = credentials_channel();
    tx.send_replace(Some(creds));
    let cfg = SidecarConfig::from_yaml(&yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    (
        Sidecar::bind_with_credentials(cfg, Some(rx)).await.unwrap(),
        tx,
    )
}

#[test]
fn the_hop_between_namespaces_is_mutual_tls_on_the_wire() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("needs root");
        return;
    }
    for tool in ["ip", "tcpdump"] {
        if !have(tool) {
            skip(&format!(
                "`{tool}` is not installed (apt-get install iproute2 tcpdump)"
            ));
            return;
        }
    }
    let net = match Net::create() {
        Ok(n) => n,
        Err(e) => {
            skip(&format!("cannot create network namespaces: {e}"));
            return;
        }
    };
    let ca = TestCa::new("mesh");
    let payment_creds = ca.credentials(&id("payment"));
    let order_creds = ca.credentials(&id("order"));
    let peer_ip = net.peer_ip;

    // payment's namespace: the app and the sidecar, until told to stop.
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let peer_ns = net.peer.clone();
    let payment = std::thread::spawn(move || {
        enter(&peer_ns);
        runtime().block_on(async move {
            let app = Upstream::start().await;
            // The control path is open to plaintext callers; the rest needs
            // an identity (the default with one).
            let rest = "  authorization:\n    rules:\n      - paths: [/control/*]\n        allow: allow-all\n";
            let yaml = sidecar_yaml(&format!("{peer_ip}:{INBOUND}"), app.addr, rest);
            let (sc, _creds) = start(yaml, payment_creds).await;
            let (trigger, signal) = shutdown::channel();
            let task = tokio::spawn(sc.serve(signal));
            ready_tx.send(()).unwrap();
            let _ = stop_rx.await;
            trigger.trigger();
            task.await.unwrap().unwrap();
            app.hits()
        })
    });
    ready_rx.recv().unwrap();

    // The capture, on the pod's end of the veth; ready once it says so.
    let capture = Capture::start(&net.pod, &net.pod_dev);

    // order's namespace: the sidecar and its app (this code).
    let pod_ns = net.pod.clone();
    let statuses = std::thread::spawn(move || {
        enter(&pod_ns);
        runtime().block_on(async move {
            let unused_app = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
            let services = format!(
                "services:\n  payment:\n    endpoints: [{peer_ip}:{INBOUND}]\n    tls: {{ identity: {} }}\n  payment-plain:\n    endpoints: [{peer_ip}:{INBOUND}]\n    tls: {{ mode: plaintext }}\n",
                id("payment")
            );
            let yaml = sidecar_yaml("127.0.0.1:0", unused_app, &services);
            let (sc, _creds) = start(yaml, order_creds).await;
            let out = sc.outbound_addr();
            let (trigger, signal) = shutdown::channel();
            let task = tokio::spawn(sc.serve(signal));
            let c = client();
            let mut statuses = Vec::new();
            for i in 0..REQUESTS {
                let path = format!("/v1/{MARKER}/{i}");
                let got = send(&c, out, "POST", "payment", &path, MARKER).await;
                statuses.push(got.status.as_u16());
            }
            let control = send(&c, out, "GET", "payment-plain", &format!("/control/{CONTROL}"), "").await;
            statuses.push(control.status.as_u16());
            trigger.trigger();
            task.await.unwrap().unwrap();
            statuses
        })
    })
    .join()
    .unwrap();

    // The control request went last: once the capture file holds it, every
    // packet of the mTLS requests before it is in the file too.
    let wire = capture.finish_after(CONTROL);
    let _ = stop_tx.send(());
    let app_hits = payment.join().unwrap();

    assert_eq!(statuses, [[200; REQUESTS].as_slice(), &[200]].concat());
    assert_eq!(app_hits, REQUESTS as u64 + 1);
    let seen = |needle: &str| seen_in(&wire, needle);
    assert!(
        seen(CONTROL),
        "the capture sees plaintext HTTP when there is some"
    );
    assert!(!seen(MARKER), "request data crossed the veth in plaintext");
    assert!(
        !seen("POST /v1/"),
        "an HTTP request line crossed in plaintext"
    );
    assert!(!seen(&id("order")), "the identity crossed in plaintext");
}
