//! `identity:` end to end: a sidecar config naming an issuer (running here
//! on 127.0.0.1:0 over TLS) or cert-manager files yields credentials for the
//! configured SPIFFE ID, and the metrics show them.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use proxy_core::metrics::encode_text;
use sidecar::SidecarConfig;
use weir_identity::authn::BootstrapTokens;
use weir_identity::{Issuer, IssuerOptions};

const TOKEN: &str = "order-bootstrap-token-0123456789abcdef";

fn scratch(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "weir-sidecar-id-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_sidecar_obtains_its_identity_from_the_issuer() {
    let dir = scratch("issuer");
    let tokens = BootstrapTokens::from_pairs([("order".to_owned(), TOKEN.to_owned())]).unwrap();
    let issuer = Issuer::load_or_init(
        &dir.join("ca"),
        "weir.local",
        Arc::new(tokens),
        &IssuerOptions::default(),
    )
    .unwrap();
    std::fs::write(dir.join("anchor.crt"), issuer.ca().anchor_pem()).unwrap();
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, shutdown) = proxy_core::shutdown::channel();
    tokio::spawn(issuer.serve(listener, shutdown.clone()));

    let yaml = format!(
        "service: order\ninbound: {{ address: 127.0.0.1:0, app: 127.0.0.1:9 }}\nadmin: {{ address: 127.0.0.1:0 }}\n\
         identity:\n  issuer:\n    url: https://localhost:{port}\n    trust_anchor: anchor.crt\n    token_file: token\n"
    );
    let path = dir.join("sidecar.yaml");
    std::fs::write(&path, yaml).unwrap();
    let cfg = SidecarConfig::load(&path, &|_: &str| None).unwrap();
    let settings = cfg.identity.clone().unwrap();
    let mut registry = Registry::default();
    let mut watch = sidecar::identity::start(&settings, &mut registry, shutdown.clone())
        .await
        .unwrap();
    let creds = tokio::time::timeout(Duration::from_secs(30), watch.wait_for(Option::is_some))
        .await
        .unwrap()
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(creds.id.as_str(), "spiffe://weir.local/ns/default/sa/order");
    let state = sidecar::identity::state_json(&watch);
    assert_eq!(
        state["spiffe_id"],
        "spiffe://weir.local/ns/default/sa/order"
    );
    assert!(state["expires_in_seconds"].as_u64().unwrap() > 3600);
    let text = encode_text(&registry);
    assert!(text.contains("weir_identity_renewals_total 1"), "{text}");
    assert!(
        text.contains("weir_identity_certificate_expiry_timestamp_seconds"),
        "{text}"
    );
    stop.trigger();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn unusable_files_fail_the_start_with_the_path() {
    let dir = scratch("files");
    let yaml = "service: order\ninbound: { address: 127.0.0.1:0, app: 127.0.0.1:9 }\nadmin: { address: 127.0.0.1:0 }\n\
                identity:\n  files: { cert: tls.crt, key: tls.key, ca: ca.crt }\n";
    let path = dir.join("sidecar.yaml");
    std::fs::write(&path, yaml).unwrap();
    let cfg = SidecarConfig::load(&path, &|_: &str| None).unwrap();
    let mut registry = Registry::default();
    let err = sidecar::identity::start(
        &cfg.identity.unwrap(),
        &mut registry,
        proxy_core::shutdown::Shutdown::never(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("tls.crt"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The `sidecar identity` commands as a user runs them: `init` makes a CA,
/// `token` adds a token, `issuer` serves certificates for it.
#[tokio::test]
async fn the_identity_commands_make_a_ca_and_serve_it() {
    use std::process::{Command, Stdio};
    let dir = scratch("cli");
    let bin = env!("CARGO_BIN_EXE_sidecar");
    let ca = dir.join("ca");
    let init = Command::new(bin)
        .args(["identity", "init", "--trust-domain", "weir.local", "--dir"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let again = Command::new(bin)
        .args(["identity", "init", "--dir"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(!again.status.success(), "init must not overwrite a CA");
    let tokens = dir.join("tokens.yaml");
    let out = Command::new(bin)
        .args(["identity", "token", "--service", "payment", "--tokens"])
        .arg(&tokens)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    // A free port for the child to bind (the command takes an address).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(bin)
        .args([
            "identity",
            "issuer",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--dir",
        ])
        .arg(&ca)
        .arg("--tokens")
        .arg(&tokens)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let anchor = std::fs::read(ca.join("anchor.crt")).unwrap();
    let anchors: Vec<_> = rustls_pki_types::pem::PemObject::pem_slice_iter(&anchor)
        .collect::<Result<Vec<rustls_pki_types::CertificateDer<'static>>, _>>()
        .unwrap();
    let client = weir_identity::IdentityClient::new(
        &format!("https://localhost:{port}"),
        &anchors,
        weir_identity::TokenSource::Value(token),
        None,
    )
    .unwrap();
    // No event says the child is listening: retry, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let creds = loop {
        match client.fetch().await {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "issuer never answered: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(
        creds.id.as_str(),
        "spiffe://weir.local/ns/default/sa/payment"
    );
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
