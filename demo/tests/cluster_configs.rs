//! The Kubernetes configs (`deploy/k8s/base`) are the local ones
//! (`config/`) with only their environment changed. Each config file lists
//! the fields that may differ, and so does [`GATEWAY_ENVIRONMENT`] /
//! [`SIDECAR_ENVIRONMENT`] here: addresses, endpoints, file paths, and the
//! cluster-wide rate-limit backend and trace export. Any other difference
//! (a missing `strip_headers`, a route without its write scope, a different
//! retry policy) fails this test, so a security setting cannot exist in one
//! environment only. SPIFFE IDs compare with their namespace translated
//! ([`LOCAL_NAMESPACE`] to [`CLUSTER_NAMESPACE`]): an authorization rule names
//! the same workloads in both. (That the workloads exist and the identity
//! pieces agree is `cluster_identity.rs`.)

use std::path::{Path, PathBuf};

use serde_norway::Value;

/// Fields of the gateway config that belong to the environment. `*` is any
/// list item or map value.
const GATEWAY_ENVIRONMENT: &[&str] = &[
    "listeners.*.address",
    "admin.address",
    "upstreams.*.endpoints",
    "auth.jwt.*.jwks.file",
    "rate_limits.backend",
    "rate_limits.redis",
    "telemetry.otlp",
    "dashboard.sidecars",
    // The local demo gives the gateway its identity and the upstreams their
    // `tls:` when it starts (demo/src/stack.rs); the cluster's are written out.
    "identity",
    "upstreams.*.tls",
];

/// Fields of a sidecar config that belong to the environment.
const SIDECAR_ENVIRONMENT: &[&str] = &[
    "inbound.address",
    "outbound.address",
    "admin.address",
    "services.*.endpoints",
];

/// The namespace of every workload in the local demo, and in the cluster.
const LOCAL_NAMESPACE: &str = "default";
const CLUSTER_NAMESPACE: &str = "weir-demo";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Removes the field at `path` (with `*` wildcards) wherever it exists.
fn remove(doc: &mut Value, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match (doc, *first) {
        (Value::Sequence(items), "*") => items.iter_mut().for_each(|v| remove(v, rest)),
        (Value::Mapping(map), "*") => map.values_mut().for_each(|v| remove(v, rest)),
        (Value::Mapping(map), key) if rest.is_empty() => {
            map.remove(key);
        }
        (Value::Mapping(map), key) => {
            if let Some(v) = map.get_mut(key) {
                remove(v, rest);
            }
        }
        _ => {}
    }
}

/// The config without its environment-specific fields.
fn policy_of(mut doc: Value, environment: &[&str]) -> Value {
    for field in environment {
        remove(&mut doc, &field.split('.').collect::<Vec<_>>());
    }
    doc
}

/// Rewrites every SPIFFE ID in `doc` from namespace `from` to `to`
/// (`spiffe://<td>/ns/<from>/sa/<account>`), leaving other strings alone.
fn translate_namespace(doc: &mut Value, from: &str, to: &str) {
    match doc {
        Value::String(s) => {
            if let Some((td, rest)) = s.strip_prefix("spiffe://").and_then(|r| r.split_once('/'))
                && let Some(account) = rest.strip_prefix(&format!("ns/{from}/sa/"))
            {
                *s = format!("spiffe://{td}/ns/{to}/sa/{account}");
            }
        }
        Value::Sequence(items) => items
            .iter_mut()
            .for_each(|v| translate_namespace(v, from, to)),
        Value::Mapping(map) => map
            .values_mut()
            .for_each(|v| translate_namespace(v, from, to)),
        Value::Tagged(t) => translate_namespace(&mut t.value, from, to),
        _ => {}
    }
}

/// The first difference between two YAML values, as a dotted path.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Mapping(x), Value::Mapping(y)) => {
            for (k, v) in x {
                let key = format!("{at}.{}", k.as_str().unwrap_or("?"));
                match y.get(k) {
                    Some(w) => {
                        if let Some(d) = first_difference(v, w, &key) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{key} (only in config/)")),
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{at}.{} (only in deploy/k8s/)", k.as_str().unwrap_or("?")))
        }
        (Value::Sequence(x), Value::Sequence(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, &format!("{at}.{i}"))),
        _ if a == b => None,
        _ => Some(format!("{at}: {a:?} vs {b:?}")),
    }
}

fn assert_same_policy(local: &str, cluster: &str, environment: &[&str]) {
    let mut a = policy_of(load(&root().join(local)), environment);
    translate_namespace(&mut a, LOCAL_NAMESPACE, CLUSTER_NAMESPACE);
    let b = policy_of(load(&root().join(cluster)), environment);
    if let Some(diff) = first_difference(&a, &b, "") {
        panic!(
            "{cluster} differs from {local} outside the environment-specific fields \
             {environment:?}: {diff}"
        );
    }
}

#[test]
fn the_cluster_gateway_config_is_the_local_one_in_another_environment() {
    assert_same_policy(
        "config/gateway.yaml",
        "deploy/k8s/base/gateway/gateway.yaml",
        GATEWAY_ENVIRONMENT,
    );
    // The environment's own values point where the cluster's Services are.
    let cluster = load(&root().join("deploy/k8s/base/gateway/gateway.yaml"));
    for (name, upstream) in cluster["upstreams"].as_mapping().expect("upstreams") {
        let name = name.as_str().expect("name");
        assert_eq!(
            upstream["endpoints"][0].as_str(),
            Some(format!("dns:{name}-headless.weir-demo.svc.cluster.local:4143").as_str())
        );
    }
}

#[test]
fn the_cluster_sidecar_configs_are_the_local_ones_in_another_environment() {
    for service in ["catalog", "order", "payment"] {
        assert_same_policy(
            &format!("config/sidecar-{service}.yaml"),
            &format!("deploy/k8s/base/services/sidecar-{service}.yaml"),
            SIDECAR_ENVIRONMENT,
        );
    }
}

/// An authorization rule naming a workload of the local namespace compares
/// equal to the same workload in the cluster's, and to no other.
#[test]
fn spiffe_ids_compare_across_the_namespaces() {
    let rule = |id: &str| -> Value {
        serde_norway::from_str(&format!(
            "inbound: {{ authorization: {{ rules: [{{ identities: [{id}], paths: [/ns/default/sa/x] }}] }} }}"
        ))
        .unwrap()
    };
    let mut local = rule("spiffe://weir.local/ns/default/sa/order");
    translate_namespace(&mut local, LOCAL_NAMESPACE, CLUSTER_NAMESPACE);
    // Only the SPIFFE ID changes, not the path that looks alike.
    assert_eq!(local, rule("spiffe://weir.local/ns/weir-demo/sa/order"));
    for other in [
        "spiffe://weir.local/ns/default/sa/order",
        "spiffe://weir.local/ns/weir-demo/sa/payment",
        "spiffe://cluster.local/ns/weir-demo/sa/order",
    ] {
        assert!(
            first_difference(&local, &rule(other), "").is_some(),
            "{other}"
        );
    }
}

/// The comparison is not blind: a field outside the environment list that
/// differs is caught, one that only exists on one side too.
#[test]
fn a_difference_outside_the_environment_is_found() {
    let local: Value =
        serde_norway::from_str("admin: { address: 1.1.1.1:1 }\nauth: { strip_headers: [x-a] }\n")
            .unwrap();
    let cluster: Value =
        serde_norway::from_str("admin: { address: 0.0.0.0:1 }\nauth: {}\n").unwrap();
    let (a, b) = (
        policy_of(local, GATEWAY_ENVIRONMENT),
        policy_of(cluster, GATEWAY_ENVIRONMENT),
    );
    assert_eq!(
        first_difference(&a, &b, "").as_deref(),
        Some(".auth.strip_headers (only in config/)")
    );
}
