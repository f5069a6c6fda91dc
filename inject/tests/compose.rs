//! `deploy/compose.yaml` holds together: every container shares the `pod`
//! network namespace, each app's `HTTP_PROXY` is its own sidecar's outbound
//! listener, the gateway's upstreams (config/gateway.yaml) are the sidecars'
//! inbound listeners, and every mounted config file exists. (No Docker engine
//! here to run it; these are the links a typo would break.)

use std::path::{Path, PathBuf};

use serde_norway::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut value: Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    value.apply_merge().expect("merge keys");
    value
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

#[test]
fn compose_stack_is_wired_consistently() {
    let deploy = repo_root().join("deploy");
    let compose = load(&deploy.join("compose.yaml"));
    let services = compose["services"].as_mapping().expect("services");
    assert!(services.len() >= 10, "stack incomplete: {}", services.len());

    for (name, svc) in services {
        let name = name.as_str().expect("name");
        if name != "pod" {
            assert_eq!(
                svc["network_mode"], "service:pod",
                "{name} must share the pod's network namespace"
            );
            assert_eq!(
                svc["read_only"], true,
                "{name} must run with a read-only root filesystem"
            );
        }
    }
    let gateway = load(&repo_root().join("config/gateway.yaml"));
    let mut upstream_endpoints: Vec<String> = gateway["upstreams"]
        .as_mapping()
        .expect("upstreams")
        .values()
        .flat_map(|u| u["endpoints"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str().map(str::to_owned))
        .collect();
    upstream_endpoints.sort();

    let mut inbound = Vec::new();
    for app in ["catalog", "order", "payment"] {
        let sidecar = &services[&Value::from(format!("{app}-sidecar"))];
        let mounts = sidecar["volumes"].as_sequence().expect("sidecar volumes");
        assert!(
            mounts
                .iter()
                .any(|v| v.as_str() == Some("../config:/etc/weir:ro")),
            "{app}-sidecar mounts"
        );
        let command = sidecar["command"].as_sequence().expect("sidecar command");
        let config_path = command
            .iter()
            .skip_while(|a| a.as_str() != Some("--config"))
            .nth(1)
            .and_then(Value::as_str)
            .expect("--config FILE");
        // The sidecars mount config/ at /etc/weir.
        let file = config_path
            .strip_prefix("/etc/weir/")
            .map(|f| repo_root().join("config").join(f))
            .unwrap_or_else(|| {
                panic!("{app}-sidecar config {config_path} is not under the mounted config/")
            });
        let config = load(&file);
        assert_eq!(str_at(&config, &["service"]), Some(app));

        let outbound = str_at(&config, &["outbound", "address"]).expect("outbound.address");
        let proxy = str_at(&services[&Value::from(app)], &["environment", "HTTP_PROXY"])
            .expect("HTTP_PROXY");
        assert_eq!(
            proxy,
            format!("http://{outbound}"),
            "{app}'s HTTP_PROXY is not its sidecar's outbound listener"
        );

        let app_addr = str_at(&config, &["inbound", "app"]).expect("inbound.app");
        let port = app_addr.rsplit(':').next().expect("port");
        assert!(
            ["8081", "8082", "8083"].contains(&port),
            "{app} app address {app_addr}"
        );
        inbound.push(
            str_at(&config, &["inbound", "address"])
                .expect("inbound.address")
                .to_owned(),
        );
    }
    inbound.sort();
    assert_eq!(
        upstream_endpoints, inbound,
        "config/gateway.yaml upstreams are not the compose sidecars' inbound listeners"
    );

    let gw = &services[&Value::from("gateway")];
    let volumes = gw["volumes"].as_sequence().expect("gateway volumes");
    assert!(
        volumes
            .iter()
            .any(|v| v.as_str() == Some("../config:/etc/weir:ro"))
    );
    assert_eq!(
        str_at(gw, &["environment", "WEIR_LISTENER_PUBLIC_ADDRESS"]),
        Some("0.0.0.0:8080")
    );
    let published: Vec<_> = services[&Value::from("pod")]["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        published.contains(&"8080:8080") && published.contains(&"16686:16686"),
        "{published:?}"
    );

    for dockerfile in ["gateway", "sidecar", "catalog", "order", "payment"] {
        let path = deploy.join(format!("{dockerfile}.Dockerfile"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("HEALTHCHECK")),
            "{dockerfile}: probes belong to Kubernetes"
        );
        assert!(
            text.contains("\nUSER "),
            "{dockerfile}: must run as a non-root user"
        );
        assert!(
            text.matches("\nFROM ").count() >= 2,
            "{dockerfile}: must be multi-stage"
        );
    }
}

/// Rewrites the namespace of every SPIFFE ID under `v` to `NAMESPACE`: the
/// demo's workloads are in `default`, the cluster's in `weir-demo`, and a
/// rule names the same workloads in both.
fn any_namespace(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Some((head, rest)) = s.split_once("/ns/")
                && head.starts_with("spiffe://")
                && let Some((_, account)) = rest.split_once("/sa/")
            {
                *s = format!("{head}/ns/NAMESPACE/sa/{account}");
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(any_namespace),
        Value::Mapping(map) => map.values_mut().for_each(any_namespace),
        _ => {}
    }
}

/// The cluster's sidecar configs (deploy/k8s/base/services) carry the same
/// policies as the demo's (config/); only addresses and the namespace in
/// SPIFFE IDs differ, and the addresses are the injector's defaults (which
/// its env sets anyway).
#[test]
fn cluster_sidecar_configs_follow_the_demo_configs() {
    let root = repo_root();
    for app in ["catalog", "order", "payment"] {
        let demo = load(&root.join(format!("config/sidecar-{app}.yaml")));
        let mut cluster = load(&root.join(format!("deploy/k8s/base/services/sidecar-{app}.yaml")));
        assert_eq!(
            str_at(&cluster, &["inbound", "address"]),
            Some("0.0.0.0:4143"),
            "{app}"
        );
        assert_eq!(
            str_at(&cluster, &["outbound", "address"]),
            Some("127.0.0.1:4140"),
            "{app}"
        );
        assert_eq!(
            str_at(&cluster, &["admin", "address"]),
            Some("0.0.0.0:4191"),
            "{app}"
        );
        // Normalize addresses, then everything else must be equal.
        let mut demo = demo;
        for config in [&mut demo, &mut cluster] {
            any_namespace(config);
            for path in [
                ["inbound", "address"],
                ["outbound", "address"],
                ["admin", "address"],
            ] {
                config[path[0]][path[1]] = Value::from("ADDRESS");
            }
            if let Some(services) = config.get_mut("services").and_then(Value::as_mapping_mut) {
                for (name, service) in services.iter_mut() {
                    let name = name.as_str().expect("service name").to_owned();
                    let endpoints = service["endpoints"]
                        .as_sequence()
                        .expect("endpoints")
                        .clone();
                    let cluster_form =
                        format!("dns:{name}-headless.weir-demo.svc.cluster.local:4143");
                    assert!(
                        endpoints.iter().all(|e| e
                            .as_str()
                            .is_some_and(|e| e.starts_with("127.0.0.1:") || e == cluster_form)),
                        "{app} -> {name}: {endpoints:?}"
                    );
                    service["endpoints"] = Value::from("ENDPOINTS");
                }
            }
        }
        assert_eq!(
            demo, cluster,
            "deploy/k8s/base/services/sidecar-{app}.yaml drifted from config/sidecar-{app}.yaml"
        );
    }
}
