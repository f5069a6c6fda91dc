//! The two containers injection adds: the `weir-sidecar` proxy (a native
//! sidecar) and the `weir-init` iptables container of transparent mode.

use serde_json::{Map, Value, json};

use crate::options::{INIT_CONTAINER, PROXY_UID, PodSettings, SIDECAR_CONTAINER};

/// Where the sidecar finds its `sidecar.yaml` when a ConfigMap is mounted.
const CONFIG_DIR: &str = "/etc/weir";
pub(crate) const CONFIG_VOLUME: &str = "weir-config";
/// iptables takes `/run/xtables.lock`; with a read-only root it needs a writable `/run`.
pub(crate) const XTABLES_VOLUME: &str = "weir-xtables-lock";
/// The Secret holding the admin bearer token (`weir.dev/admin-token-secret`).
pub(crate) const ADMIN_TOKEN_VOLUME: &str = "weir-admin-token";
/// Where that Secret is mounted; the sidecar reads `token` through `WEIR_ADMIN_TOKEN_FILE`.
const ADMIN_TOKEN_DIR: &str = "/etc/weir-admin";
/// The projected volume with the identity token and the trust anchor.
pub(crate) const IDENTITY_VOLUME: &str = "weir-identity";
const IDENTITY_DIR: &str = "/var/run/weir/identity";
/// The audience of the projected token: only the issuer accepts it.
pub(crate) const IDENTITY_AUDIENCE: &str = "weir-identity";
/// The ConfigMap with the trust anchor (`anchor.crt`) in the pod's namespace.
pub(crate) const TRUST_ANCHOR_CONFIG_MAP: &str = "weir-trust-anchor";

fn field_env(name: &str, field: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}})
}

pub(crate) fn sidecar_container(s: &PodSettings, app_port: Option<u16>) -> Value {
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        json!({"name": "WEIR_MODE", "value": s.mode.as_str()}),
        json!({"name": "WEIR_INBOUND_ADDRESS", "value": format!("0.0.0.0:{}", s.inbound_port)}),
        json!({"name": "WEIR_OUTBOUND_ADDRESS", "value": format!("127.0.0.1:{}", s.outbound_port)}),
        json!({"name": "WEIR_ADMIN_ADDRESS", "value": format!("0.0.0.0:{}", s.admin_port)}),
    ];
    if let Some(port) = app_port {
        env.push(json!({"name": "WEIR_APP_ADDRESS", "value": format!("127.0.0.1:{port}")}));
    }
    if let Some(service) = &s.service {
        env.push(json!({"name": "WEIR_SERVICE", "value": service}));
        env.push(json!({"name": "OTEL_SERVICE_NAME", "value": format!("{service}-sidecar")}));
    }
    if let Some(endpoint) = &s.otlp_endpoint {
        env.push(json!({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": endpoint}));
    }

    let mut args = vec![json!("run")];
    let mut mounts = Vec::new();
    if s.config_map.is_some() {
        args.extend([
            json!("--config"),
            json!(format!("{CONFIG_DIR}/sidecar.yaml")),
        ]);
        mounts.push(json!({"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": true}));
    }
    if s.admin_token_secret.is_some() {
        env.push(
            json!({"name": "WEIR_ADMIN_TOKEN_FILE", "value": format!("{ADMIN_TOKEN_DIR}/token")}),
        );
        mounts.push(
            json!({"name": ADMIN_TOKEN_VOLUME, "mountPath": ADMIN_TOKEN_DIR, "readOnly": true}),
        );
    }

    if let Some(issuer) = &s.identity_issuer {
        env.extend([
            json!({"name": "WEIR_IDENTITY_ISSUER_URL", "value": issuer}),
            json!({"name": "WEIR_IDENTITY_TRUST_ANCHOR", "value": format!("{IDENTITY_DIR}/anchor.crt")}),
            json!({"name": "WEIR_IDENTITY_TOKEN_FILE", "value": format!("{IDENTITY_DIR}/token")}),
            field_env("WEIR_IDENTITY_NAMESPACE", "metadata.namespace"),
            field_env("WEIR_IDENTITY_SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ]);
        mounts.push(json!({"name": IDENTITY_VOLUME, "mountPath": IDENTITY_DIR, "readOnly": true}));
    }

    let mut requests = Map::new();
    requests.insert("cpu".into(), json!(s.cpu_request));
    requests.insert("memory".into(), json!(s.memory_request));
    let mut limits = Map::new();
    if let Some(cpu) = &s.cpu_limit {
        limits.insert("cpu".into(), json!(cpu));
    }
    if let Some(memory) = &s.memory_limit {
        limits.insert("memory".into(), json!(memory));
    }
    let mut resources = Map::new();
    resources.insert("requests".into(), Value::Object(requests));
    if !limits.is_empty() {
        resources.insert("limits".into(), Value::Object(limits));
    }

    let probe = |path: &str, period: u32, failures: u32| {
        json!({
            "httpGet": {"path": path, "port": s.admin_port},
            "periodSeconds": period,
            "timeoutSeconds": 1,
            "failureThreshold": failures,
        })
    };
    let mut container = json!({
        "name": SIDECAR_CONTAINER,
        "image": s.image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        // A native sidecar: the kubelet starts it before the app containers,
        // waits for its startup probe, and stops it after them.
        "restartPolicy": "Always",
        "ports": [
            {"name": "weir-inbound", "containerPort": s.inbound_port, "protocol": "TCP"},
            {"name": "weir-outbound", "containerPort": s.outbound_port, "protocol": "TCP"},
            {"name": "weir-admin", "containerPort": s.admin_port, "protocol": "TCP"},
        ],
        "env": env,
        "resources": resources,
        // The kubelet starts the app once this passes. `/healthz` answers
        // once the proxy's listeners are bound, so the app's first outbound
        // request finds a proxy. Not `/readyz`: that waits for the app itself
        // to answer, and the app is not started yet (a deadlock).
        "startupProbe": probe("/healthz", 1, 120),
        "readinessProbe": probe("/readyz", 5, 3),
        "livenessProbe": probe("/healthz", 10, 3),
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "runAsUser": PROXY_UID,
            "runAsGroup": PROXY_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    });
    let c = container.as_object_mut().expect("built as an object");
    if !mounts.is_empty() {
        c.insert("volumeMounts".into(), Value::Array(mounts));
    }
    if s.drain_seconds > 0 {
        // Keep serving while endpoint controllers and load balancers notice the
        // pod is going away; the image has no shell, hence the sleep action.
        c.insert(
            "lifecycle".into(),
            json!({"preStop": {"sleep": {"seconds": s.drain_seconds}}}),
        );
    }
    container
}

pub(crate) fn init_container(s: &PodSettings) -> Value {
    let join = |ports: &[u16]| {
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    // What `sidecar init-iptables` reads; the admin port is never redirected,
    // so the kubelet's probes reach it directly.
    let mut env = vec![
        json!({"name": "WEIR_PROXY_UID", "value": PROXY_UID.to_string()}),
        json!({"name": "WEIR_INBOUND_PORT", "value": s.inbound_port.to_string()}),
        json!({"name": "WEIR_OUTBOUND_PORT", "value": s.outbound_port.to_string()}),
        json!({"name": "WEIR_ADMIN_PORT", "value": s.admin_port.to_string()}),
    ];
    if !s.skip_inbound_ports.is_empty() {
        env.push(json!({"name": "WEIR_SKIP_INBOUND_PORTS", "value": join(&s.skip_inbound_ports)}));
    }
    if !s.skip_outbound_ports.is_empty() {
        env.push(
            json!({"name": "WEIR_SKIP_OUTBOUND_PORTS", "value": join(&s.skip_outbound_ports)}),
        );
    }
    json!({
        "name": INIT_CONTAINER,
        "image": s.image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["init-iptables"],
        "env": env,
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"cpu": "100m", "memory": "64Mi"},
        },
        "volumeMounts": [{"name": XTABLES_VOLUME, "mountPath": "/run"}],
        // Root with only the two network capabilities iptables needs.
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": false,
            "runAsUser": 0,
            "runAsGroup": 0,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    })
}

/// The sidecar's identity volume: a ServiceAccount token for the issuer's
/// audience (rotated by the kubelet) and the trust anchor.
pub(crate) fn identity_volume() -> Value {
    json!({
        "name": IDENTITY_VOLUME,
        "projected": {"sources": [
            {"serviceAccountToken": {
                "audience": IDENTITY_AUDIENCE,
                "expirationSeconds": 3600,
                "path": "token",
            }},
            {"configMap": {
                "name": TRUST_ANCHOR_CONFIG_MAP,
                "items": [{"key": "anchor.crt", "path": "anchor.crt"}],
            }},
        ]},
    })
}
