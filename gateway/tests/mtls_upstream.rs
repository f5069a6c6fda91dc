//! The gateway originating mutual TLS to an upstream sidecar with its own
//! workload identity handed in by an embedder: the upstream (a mesh
//! acceptor requiring client certificates) sees the gateway's SPIFFE ID; an
//! upstream proving another identity than configured is refused; an
//! upstream with `tls:` on a gateway without any identity is a config
//! error. (The gateway's own `identity:` section: `identity.rs`.)

#[path = "../../proxy-core/tests/mtls_support/mod.rs"]
mod mtls_support;
mod support;

use gateway::Gateway;
use mtls_support::TestCa;
use proxy_core::identity::credentials_channel;
use support::mesh::meshed_upstream;
use support::*;

const TD: &str = "spiffe://weir.local/ns/edge/sa";

#[tokio::test]
async fn the_gateway_proves_its_identity_to_meshed_upstreams() {
    let ca = TestCa::new("mesh");
    let (up, _stop) = meshed_upstream(ca.credentials(&format!("{TD}/payment"))).await;
    let (tx, rx) = credentials_channel();
    tx.send_replace(Some(ca.credentials(&format!("{TD}/gateway"))));
    let yaml = config(&format!(
        "upstreams:\n  payment:\n    endpoints: [{up}]\n    tls: {{ identity: {TD}/payment }}\n  impostor:\n    endpoints: [{up}]\n    tls: {{ identity: {TD}/catalog }}\nroutes:\n  - name: pay\n    match: {{ path_prefix: /pay }}\n    upstream: payment\n  - name: fake\n    match: {{ path_prefix: /fake }}\n    upstream: impostor\n"
    ));
    let gw = TestGateway::start_with_credentials(TempDir::new(), &yaml, Some(rx)).await;
    let ok = get(&gw.url("/pay")).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.text(), format!("{TD}/gateway"));
    let refused = get(&gw.url("/fake")).await;
    assert_eq!(refused.status, 502, "{}", refused.text());
}

/// Its connections could only fail (mutual TLS never falls back to
/// plaintext), so the gateway refuses the config and names the field.
#[tokio::test]
async fn an_upstream_with_tls_but_no_gateway_identity_is_a_config_error() {
    let dir = TempDir::new();
    let path = dir.write(
        "gateway.yaml",
        &config(
            "upstreams:\n  payment:\n    endpoints: [127.0.0.1:9]\n    tls: {}\nroutes:\n  - name: pay\n    match: { path_prefix: / }\n    upstream: payment\n",
        ),
    );
    let Err(err) = Gateway::bind(&path, |_| None).await else {
        panic!("a tls upstream without an identity must not start");
    };
    let err = err.to_string();
    assert!(err.contains("upstreams.payment.tls"), "{err}");
    assert!(err.contains("identity:"), "{err}");
    let err = gateway::load_config(&path).unwrap_err().to_string();
    assert!(err.contains("upstreams.payment.tls"), "{err}");
}
