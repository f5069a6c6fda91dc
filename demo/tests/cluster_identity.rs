//! The workload identities of the Kubernetes manifests (`deploy/k8s`) fit
//! together, checked without a cluster by computing what each piece would
//! do there:
//!
//! - the sidecar of each meshed service is what the webhook injects (the
//!   real injector, with the webhook Deployment's settings), and its SPIFFE
//!   ID is what the real sidecar config loader makes of its ConfigMap and
//!   the injected environment, with the pod's ServiceAccount as Kubernetes
//!   fills it in (`default` when the pod names none);
//! - the gateway's ID is what its `identity:` section says (it reads no
//!   `WEIR_IDENTITY_*`), and the whole k8s gateway config passes
//!   `gateway validate`'s checks;
//! - the trust domain is the one `deploy/k8s/identity-ca.sh` gives the CA
//!   (run with `--no-apply` and a stand-in for the sidecar binary that
//!   prints its arguments).
//!
//! Then every ID is in the CA's trust domain, every workload has its own ID,
//! every ID an authorization rule or an upstream's `tls.identity` names is a
//! workload's, the gateway mounts the same token and trust anchor as injected
//! sidecars, and the issuer checks that audience and may create TokenReviews.
//! (The same configs' policies are compared with `config/` in
//! `cluster_configs.rs`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use proxy_core::identity::SpiffeId;
use serde_norway::Value;
use weir_inject::{InjectOptions, SIDECAR_CONTAINER, inject_yaml};

/// The meshed services: each has a Deployment and a sidecar ConfigMap in
/// `deploy/k8s/base/services/`.
const SERVICES: &[&str] = &["catalog", "order", "payment"];

fn base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/base")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a multi-document manifest under `deploy/k8s/base`.
fn docs(file: &str) -> Vec<Value> {
    let text = read(&base().join(file));
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// Every resource the base kustomization applies.
fn all_resources() -> Vec<Value> {
    let kustomization: Value = serde_norway::from_str(&read(&base().join("kustomization.yaml")))
        .expect("kustomization.yaml");
    kustomization["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .flat_map(|f| docs(f.as_str().expect("file name")))
        .collect()
}

fn find<'a>(resources: &'a [Value], kind: &str, namespace: &str, name: &str) -> Option<&'a Value> {
    resources.iter().find(|d| {
        d["kind"].as_str() == Some(kind)
            && d["metadata"]["name"].as_str() == Some(name)
            && d["metadata"]["namespace"].as_str() == Some(namespace)
    })
}

fn str_at<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v:?}"))
}

fn webhook_env(name: &str) -> String {
    let webhook = docs("webhook/webhook.yaml");
    let deploy = webhook
        .iter()
        .find(|d| d["kind"].as_str() == Some("Deployment"))
        .expect("webhook Deployment");
    let env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .expect("webhook env");
    env.iter()
        .find(|e| e["name"].as_str() == Some(name))
        .map(|e| str_at(&e["value"], name).to_owned())
        .unwrap_or_else(|| panic!("the webhook sets no {name}"))
}

/// The issuer URL injected sidecars get.
fn injected_issuer_url() -> String {
    webhook_env("WEIR_INJECT_IDENTITY_ISSUER")
}

/// What Kubernetes runs for one meshed service once the webhook has
/// injected its pod.
struct Meshed {
    namespace: String,
    /// The pod's ServiceAccount as Kubernetes fills it in.
    service_account: String,
    /// The injected pod spec.
    pod: Value,
    /// The injected sidecar's environment, downward API resolved.
    env: BTreeMap<String, String>,
    config: sidecar::SidecarConfig,
}

fn meshed(service: &str) -> Meshed {
    let manifest = docs(&format!("services/{service}.yaml"));
    let deployment = manifest
        .iter()
        .find(|d| d["kind"].as_str() == Some("Deployment"))
        .expect("Deployment");
    let namespace = str_at(&deployment["metadata"]["namespace"], "namespace").to_owned();
    let options = InjectOptions {
        identity_issuer: Some(injected_issuer_url()),
        ..Default::default()
    };
    let out = inject_yaml(&serde_norway::to_string(deployment).unwrap(), &options)
        .unwrap_or_else(|e| panic!("{service}: injection failed: {e}"));
    let injected: Value = serde_norway::from_str(&out).expect("injected yaml");
    let pod = injected["spec"]["template"]["spec"].clone();
    // What the API server fills in for a pod that names no ServiceAccount.
    let service_account = pod["serviceAccountName"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let container = pod["initContainers"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|c| c["name"].as_str() == Some(SIDECAR_CONTAINER))
        .unwrap_or_else(|| panic!("{service}: no injected sidecar"));
    let mut env = BTreeMap::new();
    for e in container["env"].as_sequence().expect("sidecar env") {
        let name = str_at(&e["name"], "env name").to_owned();
        let value = match (&e["value"], &e["valueFrom"]["fieldRef"]["fieldPath"]) {
            (Value::String(v), _) => v.clone(),
            (_, Value::String(field)) => match field.as_str() {
                "metadata.namespace" => namespace.clone(),
                "metadata.name" => format!("{service}-0"),
                "spec.serviceAccountName" => service_account.clone(),
                other => panic!("{service}: {name} from an unexpected field {other}"),
            },
            _ => panic!("{service}: {name} has neither value nor fieldRef"),
        };
        env.insert(name, value);
    }
    // The admin token file exists only in the pod.
    env.remove("WEIR_ADMIN_TOKEN_FILE");
    let text = read(&base().join(format!("services/sidecar-{service}.yaml")));
    let lookup = env.clone();
    let config = sidecar::SidecarConfig::from_yaml(&text, &move |k: &str| lookup.get(k).cloned())
        .unwrap_or_else(|e| panic!("{service}: the injected sidecar's config: {e}"));
    Meshed {
        namespace,
        service_account,
        pod,
        env,
        config,
    }
}

fn sidecar_id(m: &Meshed) -> &SpiffeId {
    &m.config
        .identity
        .as_ref()
        .expect("an injected sidecar has an identity")
        .id
}

/// The k8s gateway config, loaded and validated as `gateway validate` does.
fn gateway_config() -> gateway::config::GatewayConfig {
    gateway::load_config(&base().join("gateway/gateway.yaml"))
        .unwrap_or_else(|e| panic!("deploy/k8s/base/gateway/gateway.yaml: {e}"))
}

fn gateway_identity() -> weir_identity::IdentitySettings {
    let mut errors = proxy_core::config::ConfigErrors::new();
    gateway_config()
        .identity_settings(&mut errors)
        .unwrap_or_else(|| panic!("the k8s gateway needs an identity section ({errors})"))
}

/// The trust domain `identity-ca.sh` creates the CA for when run as
/// documented (no TRUST_DOMAIN set): the script runs for real, with `echo`
/// standing in for the sidecar binary so its `identity init` arguments show.
fn ca_script_trust_domain() -> String {
    let dir = std::env::temp_dir().join(format!("weir-identity-ca-{}", std::process::id()));
    let out = Command::new("bash")
        .arg(base().join("../identity-ca.sh"))
        .args(["--out-dir".as_ref(), dir.as_os_str(), "--no-apply".as_ref()])
        .env("SIDECAR", "echo")
        .env_remove("TRUST_DOMAIN")
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "identity-ca.sh --no-apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let args: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(args.get(..2), Some(&["identity", "init"][..]), "{stdout}");
    args.windows(2)
        .find(|w| w[0] == "--trust-domain")
        .map(|w| w[1].to_owned())
        .unwrap_or_else(|| panic!("no --trust-domain in {stdout}"))
}

/// The namespaces `identity-ca.sh` puts the trust anchor ConfigMap in by default.
fn ca_script_namespaces() -> Vec<String> {
    let script = read(&base().join("../identity-ca.sh"));
    let line = script
        .lines()
        .find_map(|l| l.strip_prefix("NAMESPACES=\"${NAMESPACES:-"))
        .expect("NAMESPACES default in identity-ca.sh");
    line.trim_end_matches("}\"")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Every SPIFFE ID named anywhere under `v` (rules, pins).
fn spiffe_ids_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with("spiffe://") => out.push(s.clone()),
        Value::Sequence(items) => items.iter().for_each(|i| spiffe_ids_in(i, out)),
        Value::Mapping(map) => map.values().for_each(|i| spiffe_ids_in(i, out)),
        _ => {}
    }
}

#[test]
fn the_ca_is_made_for_the_trust_domain_every_workload_asks_for() {
    let td = ca_script_trust_domain();
    for service in SERVICES {
        let m = meshed(service);
        assert_eq!(
            sidecar_id(&m).trust_domain(),
            td,
            "{service}'s injected sidecar asks for {} but identity-ca.sh makes the CA for {td}: \
             the issuer would refuse every certificate",
            sidecar_id(&m)
        );
    }
    let gw = gateway_identity();
    assert_eq!(gw.id.trust_domain(), td, "the gateway asks for {}", gw.id);

    // Every ID a config names is in that trust domain too.
    let mut named = Vec::new();
    for service in SERVICES {
        let text = read(&base().join(format!("services/sidecar-{service}.yaml")));
        spiffe_ids_in(&serde_norway::from_str(&text).unwrap(), &mut named);
    }
    spiffe_ids_in(
        &serde_norway::from_str(&read(&base().join("gateway/gateway.yaml"))).unwrap(),
        &mut named,
    );
    assert!(!named.is_empty());
    for id in named {
        let parsed = SpiffeId::parse(&id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(parsed.trust_domain(), td, "{id}");
    }
}

#[test]
fn each_workload_proves_its_own_service_account() {
    let resources = all_resources();
    let mut ids = BTreeMap::new();
    for service in SERVICES {
        let m = meshed(service);
        assert_eq!(
            m.service_account, *service,
            "{service}'s pods must run as their own ServiceAccount, not {:?}",
            m.service_account
        );
        assert!(
            find(&resources, "ServiceAccount", &m.namespace, service).is_some(),
            "no ServiceAccount {}/{service} in the manifests",
            m.namespace
        );
        assert_eq!(
            sidecar_id(&m).as_str(),
            format!(
                "spiffe://{}/ns/{}/sa/{service}",
                sidecar_id(&m).trust_domain(),
                m.namespace
            )
        );
        ids.insert(service.to_string(), sidecar_id(&m).as_str().to_owned());
    }

    // The gateway's section names its pod's namespace and ServiceAccount,
    // which Kubernetes vouches for in the token (the issuer refuses a CSR
    // for any other ID).
    let gateway = find(&resources, "Deployment", "weir-demo", "gateway").expect("gateway");
    let ns = str_at(&gateway["metadata"]["namespace"], "namespace");
    let sa = gateway["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or("default");
    assert_eq!(
        sa, "gateway",
        "the gateway's pods need their own ServiceAccount"
    );
    assert!(find(&resources, "ServiceAccount", ns, sa).is_some());
    let gw = gateway_identity();
    assert_eq!(
        gw.id.as_str(),
        format!("spiffe://{}/ns/{ns}/sa/{sa}", gw.id.trust_domain())
    );
    ids.insert("gateway".into(), gw.id.as_str().to_owned());

    let distinct: std::collections::BTreeSet<_> = ids.values().collect();
    assert_eq!(distinct.len(), ids.len(), "workloads share an ID: {ids:?}");
}

#[test]
fn authorization_rules_and_pins_name_real_workloads() {
    let mut workloads: BTreeMap<String, String> = SERVICES
        .iter()
        .map(|s| (sidecar_id(&meshed(s)).as_str().to_owned(), s.to_string()))
        .collect();
    workloads.insert(gateway_identity().id.as_str().to_owned(), "gateway".into());

    for service in SERVICES {
        let text = read(&base().join(format!("services/sidecar-{service}.yaml")));
        let mut named = Vec::new();
        spiffe_ids_in(&serde_norway::from_str(&text).unwrap(), &mut named);
        for id in named {
            assert!(
                workloads.contains_key(&id),
                "sidecar-{service}.yaml names {id}, which no workload proves; they are {:?}",
                workloads.keys()
            );
        }
    }
    // Charging stays the order service's: its real ID is the rule's.
    let payment: Value =
        serde_norway::from_str(&read(&base().join("services/sidecar-payment.yaml"))).unwrap();
    let charge = payment["inbound"]["authorization"]["rules"]
        .as_sequence()
        .expect("payment's rules")
        .iter()
        .find(|r| {
            r["methods"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|m| m.as_str() == Some("POST"))
        })
        .expect("payment's charge rule");
    let mut named = Vec::new();
    spiffe_ids_in(&charge["identities"], &mut named);
    assert_eq!(named, [sidecar_id(&meshed("order")).as_str()]);
}

#[test]
fn the_gateway_calls_each_sidecar_over_mtls_pinned_to_its_service() {
    let config = gateway_config();
    for service in SERVICES {
        let upstream = config
            .upstreams
            .get(*service)
            .unwrap_or_else(|| panic!("no upstream {service}"));
        let tls = upstream.tls.as_ref().unwrap_or_else(|| {
            panic!(
                "upstreams.{service} is plaintext: its meshed sidecar (all-authenticated) \
                 would answer 403"
            )
        });
        assert_eq!(
            tls.identity.as_deref(),
            Some(sidecar_id(&meshed(service)).as_str()),
            "upstreams.{service}.tls.identity"
        );
    }
    // No upstream is left in plaintext.
    for (name, upstream) in &config.upstreams {
        assert!(upstream.tls.is_some(), "upstreams.{name} has no tls");
    }
}

#[test]
fn the_gateway_gets_its_certificate_as_injected_sidecars_do() {
    let resources = all_resources();
    let gateway = find(&resources, "Deployment", "weir-demo", "gateway").expect("gateway");
    let pod = &gateway["spec"]["template"]["spec"];
    let m = meshed("order");

    // The same issuer.
    let gw = gateway_identity();
    let weir_identity::IdentitySource::Issuer {
        url,
        trust_anchor,
        token_file,
    } = &gw.source
    else {
        panic!("the k8s gateway's identity comes from the issuer");
    };
    assert_eq!(url, &injected_issuer_url());
    assert_eq!(url, &m.env["WEIR_IDENTITY_ISSUER_URL"]);

    // The same projected volume (token audience, trust anchor ConfigMap) …
    let volume = |pod: &Value, name: &str| -> Value {
        pod["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|v| v["name"].as_str() == Some(name))
            .cloned()
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    assert_eq!(
        volume(pod, "weir-identity"),
        volume(&m.pod, "weir-identity")
    );
    // … mounted where the section reads the token and the anchor, as the
    // injected sidecar's are.
    let mount = pod["containers"][0]["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .find(|v| v["name"].as_str() == Some("weir-identity"))
        .expect("the gateway mounts weir-identity");
    let dir = Path::new(str_at(&mount["mountPath"], "mountPath"));
    assert_eq!(token_file, &dir.join("token"));
    assert_eq!(trust_anchor, &dir.join("anchor.crt"));
    assert_eq!(Path::new(&m.env["WEIR_IDENTITY_TOKEN_FILE"]), token_file);
    assert_eq!(
        Path::new(&m.env["WEIR_IDENTITY_TRUST_ANCHOR"]),
        trust_anchor
    );

    // identity-ca.sh puts the trust anchor in the namespace of every pod
    // that mounts it.
    let anchor_map = volume(pod, "weir-identity")["projected"]["sources"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|s| s["configMap"]["name"].as_str().map(str::to_owned))
        .expect("trust anchor ConfigMap");
    assert_eq!(anchor_map, "weir-trust-anchor");
    let namespaces = ca_script_namespaces();
    for ns in [
        str_at(&gateway["metadata"]["namespace"], "namespace"),
        &m.namespace,
    ] {
        assert!(
            namespaces.iter().any(|n| n == ns),
            "{ns} not in {namespaces:?}"
        );
    }
}

#[test]
fn the_issuer_reviews_tokens_of_the_audience_the_workloads_carry() {
    let resources = all_resources();
    let issuer = find(&resources, "Deployment", "weir-system", "weir-identity").expect("issuer");
    let pod = &issuer["spec"]["template"]["spec"];
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| str_at(a, "arg"))
        .collect();
    assert!(args.contains(&"--kubernetes"), "{args:?}");
    let audience = args
        .iter()
        .find_map(|a| a.strip_prefix("--audience="))
        .expect("--audience");

    // Sidecars' and the gateway's tokens are made for it.
    let gateway = find(&resources, "Deployment", "weir-demo", "gateway").expect("gateway");
    for (who, pod) in [
        ("order", meshed("order").pod),
        ("gateway", gateway["spec"]["template"]["spec"].clone()),
    ] {
        let audiences: Vec<&str> = pod["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|v| {
                v["projected"]["sources"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
            })
            .filter_map(|s| s["serviceAccountToken"]["audience"].as_str())
            .collect();
        assert_eq!(audiences, [audience], "{who}'s projected token");
    }

    // Its ServiceAccount may create TokenReviews: bound to a ClusterRole that
    // allows it (the built-in system:auth-delegator, or one of ours).
    let sa = str_at(&pod["serviceAccountName"], "serviceAccountName");
    let ns = str_at(&issuer["metadata"]["namespace"], "namespace");
    let bound: Vec<&str> = resources
        .iter()
        .filter(|d| d["kind"].as_str() == Some("ClusterRoleBinding"))
        .filter(|b| {
            b["subjects"].as_sequence().into_iter().flatten().any(|s| {
                s["kind"].as_str() == Some("ServiceAccount")
                    && s["name"].as_str() == Some(sa)
                    && s["namespace"].as_str() == Some(ns)
            })
        })
        .filter(|b| b["roleRef"]["kind"].as_str() == Some("ClusterRole"))
        .map(|b| str_at(&b["roleRef"]["name"], "roleRef.name"))
        .collect();
    let may_review = |role: &str| {
        role == "system:auth-delegator"
            || resources
                .iter()
                .filter(|d| d["kind"].as_str() == Some("ClusterRole"))
                .filter(|d| d["metadata"]["name"].as_str() == Some(role))
                .flat_map(|d| d["rules"].as_sequence().into_iter().flatten())
                .any(|r| {
                    let has = |field: &str, want: &str| {
                        r[field]
                            .as_sequence()
                            .into_iter()
                            .flatten()
                            .any(|v| v.as_str() == Some(want))
                    };
                    has("apiGroups", "authentication.k8s.io")
                        && has("resources", "tokenreviews")
                        && has("verbs", "create")
                })
    };
    assert!(
        bound.iter().any(|r| may_review(r)),
        "{ns}/{sa} may not create TokenReviews (bound to {bound:?})"
    );
}
