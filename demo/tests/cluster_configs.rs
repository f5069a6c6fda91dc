//! The Kubernetes configs (`deploy/k8s/base`) are the local ones
//! (`config/`) with only their environment changed. Each config file lists
//! the fields that may differ, and so does [`GATEWAY_ENVIRONMENT`] /
//! [`SIDECAR_ENVIRONMENT`] here: addresses, endpoints, file paths, and the
//! cluster-wide rate-limit backend and trace export. Any other difference
//! (a missing `strip_headers`, a route without its write scope, a different
//! retry policy) fails this test, so a security setting cannot exist in one
//! environment only.

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
];

/// Fields of a sidecar config that belong to the environment.
const SIDECAR_ENVIRONMENT: &[&str] = &[
    "inbound.address",
    "outbound.address",
    "admin.address",
    "services.*.endpoints",
];

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
    let a = policy_of(load(&root().join(local)), environment);
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
