//! The gateway's own `identity:` section: a gateway started from a YAML
//! file gets its workload certificate from cert-manager files or from a
//! real issuer (on 127.0.0.1:0 over TLS), proves
//! `spiffe://weir.local/ns/default/sa/gateway` to a meshed upstream that
//! requires a client certificate, and reports the identity metrics. Config
//! problems name their field.

mod support;

use std::sync::Arc;

use gateway::Gateway;
use weir_identity::authn::BootstrapTokens;
use weir_identity::ca::Ca;
use weir_identity::{Issuer, IssuerOptions};

use support::mesh::{meshed_upstream, workload_credentials, write_workload_files};
use support::*;

const GATEWAY_ID: &str = "spiffe://weir.local/ns/default/sa/gateway";
const PAYMENT_ID: &str = "spiffe://weir.local/ns/default/sa/payment";
const TOKEN: &str = "gateway-bootstrap-token-0123456789abcdef";

/// An upstream `payment` over mutual TLS, routed at `/pay`, after `identity`.
fn with_upstream(identity: &str, up: std::net::SocketAddr) -> String {
    config(&format!(
        "{identity}upstreams:\n  payment:\n    endpoints: [{up}]\n    tls: {{ identity: {PAYMENT_ID} }}\nroutes:\n  - name: pay\n    match: {{ path_prefix: /pay }}\n    upstream: payment\n"
    ))
}

#[tokio::test]
async fn a_gateway_with_identity_files_proves_its_spiffe_id_upstream() {
    let dir = TempDir::new();
    let ca = Ca::init(&dir.path().join("ca"), "weir.local").unwrap();
    // Relative paths are relative to the config file.
    write_workload_files(&ca, &dir.path().join("tls"), "gateway");
    let upstream_creds = workload_credentials(&ca, &dir.path().join("payment"), "payment");
    let (up, _stop) = meshed_upstream(upstream_creds).await;
    let section = "identity:\n  files: { cert: tls/tls.crt, key: tls/tls.key, ca: tls/ca.crt }\n";
    let yaml = with_upstream(section, up);
    let gw = TestGateway::start_in(dir, &yaml).await;

    let r = get(&gw.url("/pay")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.text(),
        GATEWAY_ID,
        "the upstream saw the gateway's identity"
    );
    let state = get(&format!("http://{}/dashboard/api/state", gw.admin())).await;
    let state: serde_json::Value = serde_json::from_slice(&state.body).unwrap();
    assert_eq!(state["identity"]["spiffe_id"], GATEWAY_ID, "{state}");
    let metrics = gw.metrics().await;
    assert_eq!(metric(&metrics, "weir_identity_renewals_total"), Some(1.0));
    assert!(
        metric(
            &metrics,
            "weir_identity_certificate_expiry_timestamp_seconds"
        )
        .unwrap()
            > 0.0,
        "{metrics}"
    );

    // The source starts once: a changed section waits for a restart, and
    // the running identity stays.
    let changed = with_upstream(
        "identity:\n  service_account: edge\n  files: { cert: tls/tls.crt, key: tls/tls.key, ca: tls/ca.crt }\n",
        up,
    );
    gw.write_config(&changed);
    let report = gw.reloader.reload_report().unwrap();
    assert_eq!(report.restart_required, ["identity.service_account"]);
    assert_eq!(get(&gw.url("/pay")).await.text(), GATEWAY_ID);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_gateway_with_an_issuer_serves_once_its_first_certificate_arrives() {
    let dir = TempDir::new();
    let tokens = BootstrapTokens::from_pairs([("gateway".to_owned(), TOKEN.to_owned())]).unwrap();
    let issuer = Issuer::load_or_init(
        &dir.path().join("ca"),
        "weir.local",
        Arc::new(tokens),
        &IssuerOptions::default(),
    )
    .unwrap();
    std::fs::write(dir.path().join("anchor.crt"), issuer.ca().anchor_pem()).unwrap();
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let upstream_creds = workload_credentials(issuer.ca(), &dir.path().join("payment"), "payment");
    let (up, _stop) = meshed_upstream(upstream_creds).await;
    // Bound but not serving yet: the gateway cannot have a certificate.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let section = format!(
        "identity:\n  issuer: {{ url: \"https://localhost:{port}\", trust_anchor: anchor.crt, token_file: token }}\n"
    );
    let gw = TestGateway::start_in(dir, &with_upstream(&section, up)).await;
    let ready = get(&format!("http://{}/readyz", gw.admin())).await;
    assert_eq!(ready.status, 503, "not ready without a certificate");

    let (stop_issuer, issuer_shutdown) = proxy_core::shutdown::channel();
    tokio::spawn(issuer.serve(listener, issuer_shutdown));
    // Held in the accept queue until the certificate arrives, then served.
    let r = get(&gw.url("/pay")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), GATEWAY_ID);
    let ready = get(&format!("http://{}/readyz", gw.admin())).await;
    assert_eq!(ready.status, 200);
    let metrics = gw.metrics().await;
    assert_eq!(metric(&metrics, "weir_identity_renewals_total"), Some(1.0));
    assert_eq!(
        metric(&metrics, "weir_identity_renewal_failures_total"),
        Some(0.0)
    );
    gw.shutdown().await;
    stop_issuer.trigger();
}

#[tokio::test]
async fn identity_errors_name_the_field() {
    let dir = TempDir::new();
    let cases = [
        (
            "identity:\n  trust_domain: Bad\n  files: { cert: a, key: b, ca: c }\n",
            "identity.trust_domain",
        ),
        (
            "identity:\n  issuer: { url: \"http://localhost:1\", trust_anchor: a, token_file: t }\n",
            "identity.issuer.url",
        ),
        (
            "identity:\n  issuer: { url: \"https://localhost:1\", trust_anchor: a, token_file: t }\n  files: { cert: a, key: b, ca: c }\n",
            "set either issuer or files",
        ),
        (
            "identity: { namespace: default }\n",
            "needs an issuer or files",
        ),
        (
            "identity:\n  service_account: \"a b\"\n  files: { cert: a, key: b, ca: c }\n",
            "identity.service_account",
        ),
        (
            "identity:\n  files: { cert: a, key: b, ca: c, extra: d }\n",
            "identity.files",
        ),
    ];
    for (section, expected) in cases {
        let path = dir.write("gateway.yaml", &config(section));
        let err = gateway::load_config(&path).unwrap_err().to_string();
        assert!(err.contains(expected), "{section}: {err}");
        let Err(err) = Gateway::bind(&path, |_| None).await else {
            panic!("{section}: an invalid identity must not start");
        };
        assert!(err.to_string().contains(expected), "{section}: {err}");
    }
}

/// Files that cannot make credentials stop the start, naming the file.
#[tokio::test]
async fn missing_identity_files_fail_the_start_with_the_path() {
    let dir = TempDir::new();
    let path = dir.write(
        "gateway.yaml",
        &config("identity:\n  files: { cert: tls/tls.crt, key: tls/tls.key, ca: tls/ca.crt }\n"),
    );
    let Err(err) = Gateway::bind(&path, |_| None).await else {
        panic!("missing files must not start");
    };
    let err = err.to_string();
    assert!(
        err.contains("identity.files") && err.contains("tls.crt"),
        "{err}"
    );
}
