//! AdmissionReview round trips over real HTTPS: a review in, a JSONPatch out,
//! and the patched pod must equal what `sidecar inject` makes of the same pod.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use weir_inject::{InjectOptions, Mode, inject_yaml, load_tls, serve_webhook};

struct Webhook {
    addr: SocketAddr,
    client_tls: Arc<rustls::ClientConfig>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

/// A directory removed on drop (the certificate files live here).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn opts() -> InjectOptions {
    InjectOptions {
        image: "ghcr.io/weir-dev/sidecar:test".into(),
        otlp_endpoint: Some("http://jaeger-collector.weir-demo:4317".into()),
        ..InjectOptions::default()
    }
}

async fn start(opts: InjectOptions) -> Webhook {
    let key = rcgen::generate_simple_self_signed(vec!["weir-webhook.weir-system.svc".to_owned()])
        .expect("certificate");
    let dir = std::env::temp_dir().join(format!(
        "weir-inject-webhook-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, key.cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.signing_key.serialize_pem()).expect("write key");
    let server_tls = load_tls(&cert_path, &key_path).expect("load tls");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(key.cert.der().clone()).expect("root");
    let client_tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve_webhook(listener, Some(server_tls), opts, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });
    Webhook {
        addr,
        client_tls: Arc::new(client_tls),
        stop: Some(stop),
        task,
        _dir: TempDir(dir),
    }
}

fn fastrand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

impl Webhook {
    /// One request over a fresh TLS connection that verifies the server's certificate.
    async fn call(&self, method: &str, path: &str, body: Vec<u8>) -> (u16, String, Vec<u8>) {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        let connector = tokio_rustls::TlsConnector::from(self.client_tls.clone());
        let name = ServerName::try_from("weir-webhook.weir-system.svc").expect("name");
        let tls = connector.connect(name, tcp).await.expect("tls handshake");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("http1");
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "weir-webhook.weir-system.svc")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let resp = sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        (status, ctype, bytes)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("server task");
    }
}

fn review_of(pod: &Value, operation: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "b8c5a6a2-2f7e-4d3c-9a8e-0c1f3e2d4b5a",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "weir-demo",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
        }
    }))
    .expect("review json")
}

/// Pods as the ReplicaSet controller creates them: generateName, no name yet.
fn pods() -> Vec<Value> {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata:
  generateName: catalog-7d9f8c-
  namespace: weir-demo
  labels: {app.kubernetes.io/name: catalog, pod-template-hash: 7d9f8c}
  annotations: {weir.dev/inject: enabled}
spec:
  serviceAccountName: default
  containers:
    - name: catalog
      image: ghcr.io/weir-dev/catalog:test
      ports: [{containerPort: 8081, name: http}]
      resources: {requests: {cpu: 100m}}
---
apiVersion: v1
kind: Pod
metadata:
  generateName: order-
  labels: {app: order}
  annotations:
    weir.dev/inject: enabled
    weir.dev/mode: explicit
    weir.dev/config-map: order-sidecar
    weir.dev/proxy-cpu-limit: 500m
spec:
  terminationGracePeriodSeconds: 10
  initContainers:
    - name: migrate
      image: order:1
  containers:
    - name: order
      image: order:1
      env: [{name: DATABASE_URL, value: "sqlite:///var/lib/weir/order.db"}]
  volumes: [{name: data, emptyDir: {}}]
"#;
    yaml.split("---")
        .map(|doc| serde_norway::from_str(doc).expect("pod yaml"))
        .collect()
}

fn decode_patch(review: &Value) -> json_patch::Patch {
    let b64 = review["response"]["patch"].as_str().expect("a patch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("JSONPatch")
}

#[tokio::test]
async fn patch_applied_to_the_pod_equals_the_cli_result() {
    let hook = start(opts()).await;
    for pod in pods() {
        let (status, ctype, body) = hook
            .call("POST", "/mutate", review_of(&pod, "CREATE"))
            .await;
        assert_eq!((status, ctype.as_str()), (200, "application/json"));
        let review: Value = serde_json::from_slice(&body).expect("review json");
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["kind"], "AdmissionReview");
        assert_eq!(
            review["response"]["uid"],
            "b8c5a6a2-2f7e-4d3c-9a8e-0c1f3e2d4b5a"
        );
        assert_eq!(review["response"]["allowed"], true);
        assert_eq!(review["response"]["patchType"], "JSONPatch");

        let mut patched = pod.clone();
        json_patch::patch(&mut patched, &decode_patch(&review)).expect("patch applies");

        let pod_yaml = serde_norway::to_string(&pod).expect("yaml");
        let cli: Value =
            serde_norway::from_str(&inject_yaml(&pod_yaml, &opts()).expect("cli inject"))
                .expect("cli yaml");
        assert_eq!(patched, cli, "webhook and CLI disagree");
        assert_ne!(patched, pod, "nothing was injected");
        assert_eq!(
            patched["metadata"]["annotations"]["weir.dev/injected"],
            "true"
        );
    }
    hook.stop().await;
}

#[tokio::test]
async fn namespace_route_injects_pods_without_the_annotation_but_honours_opt_out() {
    let hook = start(opts()).await;
    let plain = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "plain", "labels": {"app": "plain"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    });
    // The per-pod route needs the annotation: no patch.
    let (status, _, body) = hook
        .call("POST", "/mutate", review_of(&plain, "CREATE"))
        .await;
    assert_eq!(status, 200);
    let review: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        review["response"],
        json!({"uid": "b8c5a6a2-2f7e-4d3c-9a8e-0c1f3e2d4b5a", "allowed": true})
    );

    // The namespace route (namespaces labelled weir.dev/inject=enabled) injects it.
    let (_, _, body) = hook
        .call("POST", "/mutate/namespace", review_of(&plain, "CREATE"))
        .await;
    let review: Value = serde_json::from_slice(&body).expect("json");
    let mut patched = plain.clone();
    json_patch::patch(&mut patched, &decode_patch(&review)).expect("patch applies");
    let names: Vec<_> = patched["spec"]["initContainers"]
        .as_array()
        .expect("init containers")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["weir-init", "weir-sidecar"]);

    // ... unless the pod opts out.
    let mut opted_out = plain.clone();
    opted_out["metadata"]["annotations"] = json!({"weir.dev/inject": "disabled"});
    let (_, _, body) = hook
        .call("POST", "/mutate/namespace", review_of(&opted_out, "CREATE"))
        .await;
    let review: Value = serde_json::from_slice(&body).expect("json");
    assert!(review["response"].get("patch").is_none(), "{review}");
    hook.stop().await;
}

#[tokio::test]
async fn malformed_reviews_get_clear_answers_and_never_block_pods() {
    let hook = start(InjectOptions {
        mode: Mode::Explicit,
        ..opts()
    })
    .await;

    // Not JSON: 400 with a problem document saying why.
    let (status, ctype, body) = hook
        .call("POST", "/mutate", b"{\"apiVersion\": ".to_vec())
        .await;
    assert_eq!((status, ctype.as_str()), (400, "application/problem+json"));
    let problem: Value = serde_json::from_slice(&body).expect("problem json");
    assert_eq!(
        problem["type"],
        "https://weir.dev/problems/bad-admission-review"
    );
    let request_id = problem["request_id"].as_str().unwrap_or_default();
    assert!(
        request_id.len() == 16 && request_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("not JSON"),
        "{problem}"
    );

    // JSON but not a review.
    let (status, _, body) = hook
        .call("POST", "/mutate", br#"{"kind": "Pod"}"#.to_vec())
        .await;
    assert_eq!(status, 400);
    let problem: Value = serde_json::from_slice(&body).expect("problem json");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("AdmissionReview"),
        "{problem}"
    );

    // A review whose pod is broken: allowed, unpatched, with a warning.
    let broken = json!({"metadata": {"annotations": {"weir.dev/inject": "enabled", "weir.dev/admin-port": "0"}},
                        "spec": {"containers": [{"name": "a", "image": "a"}]}});
    let (status, _, body) = hook
        .call("POST", "/mutate", review_of(&broken, "CREATE"))
        .await;
    assert_eq!(status, 200);
    let review: Value = serde_json::from_slice(&body).expect("review json");
    assert_eq!(review["response"]["allowed"], true);
    assert!(review["response"].get("patch").is_none());
    let warning = review["response"]["warnings"][0]
        .as_str()
        .unwrap_or_default();
    assert!(warning.contains("weir.dev/admin-port"), "{warning}");

    // Health and unknown routes.
    assert_eq!(hook.call("GET", "/healthz", Vec::new()).await.0, 200);
    assert_eq!(hook.call("GET", "/mutate", Vec::new()).await.0, 405);
    assert_eq!(hook.call("POST", "/nope", Vec::new()).await.0, 404);
    hook.stop().await;
}

#[tokio::test]
async fn serves_http2_when_the_client_negotiates_it() {
    let hook = start(opts()).await;
    let mut config = (*hook.client_tls).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(hook.addr).await.expect("connect");
    let name = ServerName::try_from("weir-webhook.weir-system.svc").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("tls handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .expect("h2");
    tokio::spawn(conn);
    let pod = &pods()[0];
    let req = http::Request::post("https://weir-webhook.weir-system.svc/mutate")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(review_of(pod, "CREATE"))))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let review: Value = serde_json::from_slice(&body).expect("review");
    assert_eq!(review["response"]["patchType"], "JSONPatch");
    hook.stop().await;
}

#[tokio::test]
async fn run_webhook_reports_a_missing_certificate() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: weir_inject::WebhookArgs,
    }
    let missing = std::env::temp_dir().join("weir-inject-no-such-dir/tls.crt");
    let cli = Cli::try_parse_from([
        "webhook",
        "--listen=127.0.0.1:0",
        &format!("--tls-cert={}", missing.display()),
        "--tls-key=/nonexistent/tls.key",
    ])
    .expect("flags");
    let err = weir_inject::run_webhook(cli.args, std::future::pending())
        .await
        .expect_err("no certificate");
    assert!(
        matches!(err, weir_inject::WebhookError::Read { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("tls.crt"), "{err}");
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "weir-inject-renew-{}-{}",
        std::process::id(),
        fastrand_suffix()
    )));
    std::fs::create_dir_all(&dir.0).expect("dir");
    let (cert_path, key_path) = (dir.0.join("tls.crt"), dir.0.join("tls.key"));
    let name = "weir-webhook.weir-system.svc";
    let first = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("cert");
    let second = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("cert");
    // Distinct modification times, whatever the file system's clock granularity.
    let write = |cert: &str, key: &str, age: u64| {
        let when = std::time::SystemTime::now() + std::time::Duration::from_secs(age);
        for (path, text) in [(&cert_path, cert), (&key_path, key)] {
            std::fs::write(path, text).expect("write");
            std::fs::File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(when))
                .expect("set mtime");
        }
    };
    write(&first.cert.pem(), &first.signing_key.serialize_pem(), 0);

    let certs = weir_inject::CertificateFiles::load(&cert_path, &key_path).expect("load");
    assert!(!certs.reload_if_changed().expect("unchanged"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_webhook(
        listener,
        Some(certs.server_config().expect("config")),
        opts(),
        async {
            let _ = stopped.await;
        },
    ));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(first.cert.der().clone()).expect("root");
    roots.add(second.cert.der().clone()).expect("root");
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let presented = || async {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let tls = tokio_rustls::TlsConnector::from(client.clone())
            .connect(ServerName::try_from(name).expect("name"), tcp)
            .await
            .expect("handshake");
        tls.get_ref().1.peer_certificates().expect("peer certs")[0].clone()
    };
    assert_eq!(&presented().await, first.cert.der());

    write(&second.cert.pem(), &second.signing_key.serialize_pem(), 10);
    assert!(certs.reload_if_changed().expect("reload"));
    assert_eq!(&presented().await, second.cert.der());

    // A broken renewal (key of another certificate) keeps the last good one.
    write(&first.cert.pem(), &second.signing_key.serialize_pem(), 20);
    assert!(certs.reload_if_changed().is_err());
    assert_eq!(&presented().await, second.cert.der());

    let _ = stop.send(());
    server.await.expect("join").expect("serve");
}
