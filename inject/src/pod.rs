//! The one injection: what the CLI and the webhook both do to a pod.
//!
//! Both paths hand [`inject_pod_template`] a JSON object with `metadata` and
//! `spec` (a Pod, or a workload's pod template), so a pod created from an
//! injected Deployment and a pod mutated by the webhook come out identical.
//!
//! Startup order comes from native sidecars (Kubernetes 1.29+): `weir-init`
//! installs the iptables redirect, then `weir-sidecar` starts as an init
//! container with `restartPolicy: Always`, and the kubelet waits for its
//! startup probe (`/healthz`: listeners bound) before starting the next init
//! container or the app. Its readiness (`/readyz`: the app answers through
//! it) then counts towards the pod's. On termination the kubelet stops the app first and the sidecar last,
//! so in-flight requests from the app still have a proxy.

use serde_json::{Map, Value, json};

use crate::containers::{
    ADMIN_TOKEN_VOLUME, CONFIG_VOLUME, IDENTITY_VOLUME, XTABLES_VOLUME, identity_volume,
    init_container, sidecar_container,
};
use crate::error::InjectError;
use crate::options::{
    INJECT_ANNOTATION, INJECTED_ANNOTATION, InjectOptions, Mode, PodSettings, SIDECAR_CONTAINER,
};

/// Time the sidecar itself needs after SIGTERM to drain (its `shutdown.drain` default).
const SIDECAR_SHUTDOWN_SECONDS: i64 = 30;

/// What happened to one pod (template).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Injected,
    Skipped(SkipReason),
}

/// Why a pod was left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// No `weir.dev/inject: enabled` and not `--all`.
    NotOptedIn,
    /// `weir.dev/inject: disabled`.
    OptedOut,
    /// `weir.dev/injected` or a `weir-sidecar` container is already there.
    AlreadyInjected,
    /// `hostNetwork: true`: iptables rules and proxy ports would land on the node.
    HostNetwork,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::NotOptedIn => "not opted in (no weir.dev/inject: enabled)",
            SkipReason::OptedOut => "opted out (weir.dev/inject: disabled)",
            SkipReason::AlreadyInjected => "already injected",
            SkipReason::HostNetwork => "uses hostNetwork",
        })
    }
}

/// Injects the sidecar into `pod`, an object with `metadata` and `spec` (a Pod
/// or a pod template), if it opts in and is not injected yet. On an error the
/// pod is left unchanged.
pub fn inject_pod_template(pod: &mut Value, opts: &InjectOptions) -> Result<Outcome, InjectError> {
    let Some(obj) = pod.as_object() else {
        return Err(InjectError::Pod("a pod template must be a mapping".into()));
    };
    let empty = Map::new();
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(InjectError::Pod("metadata must be a mapping".into())),
    };
    let annotations = sub_map(metadata, "annotations", "metadata.annotations", &empty)?;
    let labels = sub_map(metadata, "labels", "metadata.labels", &empty)?;
    // Opt-in is decided before the pod's shape is checked, so a workload that
    // is not ours to inject never fails the run.
    if annotations.contains_key(INJECTED_ANNOTATION) {
        return Ok(Outcome::Skipped(SkipReason::AlreadyInjected));
    }
    match annotations.get(INJECT_ANNOTATION) {
        Some(Value::String(s)) if s == "disabled" => {
            return Ok(Outcome::Skipped(SkipReason::OptedOut));
        }
        Some(Value::String(s)) if s == "enabled" => {}
        None if opts.all => {}
        None => return Ok(Outcome::Skipped(SkipReason::NotOptedIn)),
        Some(other) => {
            return Err(InjectError::Annotations {
                problems: vec![format!(
                    "{INJECT_ANNOTATION}: expected `enabled` or `disabled`, got {other}"
                )],
            });
        }
    }

    let Some(spec) = obj.get("spec").and_then(Value::as_object) else {
        return Err(InjectError::Pod("spec must be a mapping".into()));
    };
    let containers = match spec.get("containers") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        _ => {
            return Err(InjectError::Pod(
                "spec.containers must be a non-empty list".into(),
            ));
        }
    };
    let init_containers = match spec.get("initContainers") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(c)) => c,
        Some(_) => {
            return Err(InjectError::Pod(
                "spec.initContainers must be a list".into(),
            ));
        }
    };
    if containers
        .iter()
        .chain(init_containers)
        .any(|c| c.get("name").and_then(Value::as_str) == Some(SIDECAR_CONTAINER))
    {
        return Ok(Outcome::Skipped(SkipReason::AlreadyInjected));
    }
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        return Ok(Outcome::Skipped(SkipReason::HostNetwork));
    }

    let settings = PodSettings::resolve(opts, annotations, labels)?;
    check_conflicts(&settings, spec, containers)?;
    let app_port = settings
        .app_port
        .or_else(|| first_container_port(containers));
    let sidecar = sidecar_container(&settings, app_port);
    let init = (settings.mode == Mode::Transparent).then(|| init_container(&settings));
    let grace = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64);

    // All checks passed: from here on nothing fails, so an error above leaves the pod as it was.
    let obj = pod.as_object_mut().expect("checked above");
    let metadata = obj.entry("metadata").or_insert_with(|| json!({}));
    if metadata.is_null() {
        *metadata = json!({});
    }
    let annotations = metadata
        .as_object_mut()
        .expect("checked above")
        .entry("annotations")
        .or_insert_with(|| json!({}));
    if annotations.is_null() {
        *annotations = json!({});
    }
    annotations
        .as_object_mut()
        .expect("checked above")
        .insert(INJECTED_ANNOTATION.to_owned(), json!("true"));

    let spec = obj
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .expect("checked above");
    let mut inits: Vec<Value> = init.into_iter().chain([sidecar]).collect();
    if let Some(Value::Array(existing)) = spec.remove("initContainers") {
        inits.extend(existing);
    }
    spec.insert("initContainers".into(), Value::Array(inits));

    if settings.mode == Mode::Explicit {
        let proxy = format!("http://127.0.0.1:{}", settings.outbound_port);
        if let Some(Value::Array(containers)) = spec.get_mut("containers") {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                add_env_if_absent(c, "HTTP_PROXY", &proxy);
            }
        }
    }

    let mut volumes = Vec::new();
    if settings.mode == Mode::Transparent {
        volumes.push(json!({"name": XTABLES_VOLUME, "emptyDir": {}}));
    }
    if let Some(cm) = &settings.config_map {
        volumes.push(json!({"name": CONFIG_VOLUME, "configMap": {"name": cm}}));
    }
    if let Some(secret) = &settings.admin_token_secret {
        volumes.push(json!({"name": ADMIN_TOKEN_VOLUME, "secret": {"secretName": secret}}));
    }
    if settings.identity_issuer.is_some() {
        volumes.push(identity_volume());
    }
    if !volumes.is_empty() {
        match spec.get_mut("volumes") {
            Some(Value::Array(existing)) => existing.extend(volumes),
            _ => {
                spec.insert("volumes".into(), Value::Array(volumes));
            }
        }
    }

    // The kubelet's grace period covers the preStop sleep and the proxy's drain.
    let needed = i64::from(settings.drain_seconds) + SIDECAR_SHUTDOWN_SECONDS;
    if grace.unwrap_or(30) < needed {
        spec.insert("terminationGracePeriodSeconds".into(), json!(needed));
    }
    Ok(Outcome::Injected)
}

/// Containers share the pod's network namespace and volumes are named per
/// pod: a clash would only surface as a pod the API server or kubelet rejects.
fn check_conflicts(
    s: &PodSettings,
    spec: &Map<String, Value>,
    containers: &[Value],
) -> Result<(), InjectError> {
    let ours = [
        ("weir.dev/inbound-port", s.inbound_port),
        ("weir.dev/outbound-port", s.outbound_port),
        ("weir.dev/admin-port", s.admin_port),
    ];
    let mut problems = Vec::new();
    for (i, (key, port)) in ours.iter().enumerate() {
        if ours[..i].iter().any(|(_, p)| p == port) {
            problems.push(format!(
                "{key}: port {port} is already one of the sidecar's ports"
            ));
        }
    }
    for c in containers {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
        let ports = c
            .get("ports")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for port in ports
            .iter()
            .filter_map(|p| p.get("containerPort")?.as_u64())
        {
            if let Some((key, _)) = ours.iter().find(|(_, p)| u64::from(*p) == port) {
                problems.push(format!(
                    "container {name} uses port {port}, which the sidecar needs; move the sidecar with {key}"
                ));
            }
        }
    }
    let volumes = spec
        .get("volumes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for v in volumes.iter().filter_map(|v| v.get("name")?.as_str()) {
        if [
            CONFIG_VOLUME,
            XTABLES_VOLUME,
            ADMIN_TOKEN_VOLUME,
            IDENTITY_VOLUME,
        ]
        .contains(&v)
        {
            problems.push(format!("volume name {v} is reserved for the sidecar"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InjectError::Pod(problems.join("; ")))
    }
}

fn sub_map<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    path: &str,
    empty: &'a Map<String, Value>,
) -> Result<&'a Map<String, Value>, InjectError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(empty),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(InjectError::Pod(format!("{path} must be a mapping"))),
    }
}

/// The app's port: the first `containerPort` of the first container that declares one.
fn first_container_port(containers: &[Value]) -> Option<u16> {
    containers.iter().find_map(|c| {
        c.get("ports")?.as_array()?.iter().find_map(|p| {
            p.get("containerPort")?
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
        })
    })
}

fn add_env_if_absent(container: &mut Map<String, Value>, name: &str, value: &str) {
    let env = container.entry("env").or_insert_with(|| json!([]));
    if !env.is_array() {
        *env = json!([]);
    }
    let env = env.as_array_mut().expect("set above");
    if !env
        .iter()
        .any(|e| e.get("name").and_then(Value::as_str) == Some(name))
    {
        env.push(json!({"name": name, "value": value}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::INIT_CONTAINER;

    fn pod(annotations: Value) -> Value {
        json!({
            "metadata": {"annotations": annotations, "labels": {"app": "catalog"}},
            "spec": {"containers": [{"name": "app", "image": "catalog", "ports": [{"containerPort": 8081}]}]},
        })
    }

    #[test]
    fn injects_native_sidecar_after_init_and_is_idempotent() {
        let mut p = pod(json!({"weir.dev/inject": "enabled"}));
        let outcome = inject_pod_template(&mut p, &InjectOptions::default()).expect("inject");
        assert_eq!(outcome, Outcome::Injected);
        let inits = p["spec"]["initContainers"]
            .as_array()
            .expect("init containers");
        assert_eq!(inits[0]["name"], INIT_CONTAINER);
        assert_eq!(inits[1]["name"], SIDECAR_CONTAINER);
        assert_eq!(inits[1]["restartPolicy"], "Always");
        let env = inits[1]["env"].as_array().expect("env");
        assert!(env.contains(&json!({"name": "WEIR_APP_ADDRESS", "value": "127.0.0.1:8081"})));
        assert!(env.contains(&json!({"name": "WEIR_SERVICE", "value": "catalog"})));
        assert_eq!(p["metadata"]["annotations"][INJECTED_ANNOTATION], "true");

        let once = p.clone();
        let again = inject_pod_template(&mut p, &InjectOptions::default()).expect("inject");
        assert_eq!(again, Outcome::Skipped(SkipReason::AlreadyInjected));
        assert_eq!(p, once);
    }

    #[test]
    fn opt_out_beats_all_and_no_opt_in_skips() {
        let opts = InjectOptions {
            all: true,
            ..InjectOptions::default()
        };
        let mut p = pod(json!({"weir.dev/inject": "disabled"}));
        let before = p.clone();
        assert_eq!(
            inject_pod_template(&mut p, &opts).ok(),
            Some(Outcome::Skipped(SkipReason::OptedOut))
        );
        assert_eq!(p, before);
        let mut p = pod(json!({}));
        assert_eq!(
            inject_pod_template(&mut p, &InjectOptions::default()).ok(),
            Some(Outcome::Skipped(SkipReason::NotOptedIn))
        );
        assert_eq!(
            inject_pod_template(&mut p, &opts).ok(),
            Some(Outcome::Injected)
        );
    }

    #[test]
    fn explicit_mode_sets_http_proxy_and_skips_iptables() {
        let mut p = pod(json!({"weir.dev/inject": "enabled", "weir.dev/mode": "explicit"}));
        inject_pod_template(&mut p, &InjectOptions::default()).expect("inject");
        let inits = p["spec"]["initContainers"]
            .as_array()
            .expect("init containers");
        assert_eq!(inits.len(), 1);
        assert_eq!(
            p["spec"]["containers"][0]["env"][0],
            json!({"name": "HTTP_PROXY", "value": "http://127.0.0.1:4140"})
        );
        assert!(p["spec"].get("volumes").is_none());
    }

    #[test]
    fn port_and_volume_clashes_are_errors() {
        let mut p = pod(json!({"weir.dev/inject": "enabled"}));
        p["spec"]["containers"][0]["ports"] = json!([{"containerPort": 4191}]);
        p["spec"]["volumes"] = json!([{"name": "weir-config", "emptyDir": {}}]);
        let before = p.clone();
        let Err(InjectError::Pod(message)) = inject_pod_template(&mut p, &InjectOptions::default())
        else {
            panic!("expected a conflict");
        };
        assert!(
            message.contains("port 4191") && message.contains("weir.dev/admin-port"),
            "{message}"
        );
        assert!(message.contains("volume name weir-config"), "{message}");
        assert_eq!(p, before);

        let mut p = pod(json!({"weir.dev/inject": "enabled", "weir.dev/admin-port": "4143"}));
        assert!(inject_pod_template(&mut p, &InjectOptions::default()).is_err());
    }

    #[test]
    fn bad_annotation_leaves_pod_unchanged() {
        let mut p = pod(json!({"weir.dev/inject": "enabled", "weir.dev/inbound-port": "http"}));
        let before = p.clone();
        assert!(matches!(
            inject_pod_template(&mut p, &InjectOptions::default()),
            Err(InjectError::Annotations { .. })
        ));
        assert_eq!(p, before);
    }
}
