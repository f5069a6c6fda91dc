use std::collections::HashMap;

use super::*;

const SKETCH: &str = r#"
service: order
inbound:
  address: 0.0.0.0:4143
  app: 127.0.0.1:8082
  max_concurrent_requests: 1000
  timeout: 30s
outbound:
  address: 127.0.0.1:4140
  transparent: false
  opaque_ports: [25, 3306, 4222, 5432, 5672, 6379]
services:
  catalog:
    endpoints: [127.0.0.1:4243]
  payment:
    endpoints: [dns: payment-headless.shop.svc.cluster.local:4143]
    timeouts: { connect: 300ms, per_try: 2s, overall: 5s }
    retry:
      on: [connect_error, 502, 503, 504, grpc_unavailable]
      max_attempts: 3
      backoff: { base: 25ms, max: 250ms }
      budget: { ratio: 0.2, min_per_second: 10, window: 10s }
      non_idempotent: false
      max_replay_body: 64KiB
    circuit_breaker:
      consecutive_failures: 5
      success_rate: { threshold: 0.8, window: 10s, min_requests: 20 }
      ejection: { base: 1s, max: 1m, max_percent: 50 }
    load_balancer: p2c_ewma
admin:
  address: 127.0.0.1:4191
telemetry:
  service_name: order-sidecar
  otlp: { endpoint: http://127.0.0.1:4317, protocol: grpc }
shutdown: { drain: 30s }
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn sketch_is_valid() {
    let c = SidecarConfig::from_yaml(SKETCH, &no_env).unwrap();
    assert_eq!(c.service, "order");
    assert_eq!(c.inbound.app, "127.0.0.1:8082".parse().unwrap());
    let p = &c.services["payment"];
    assert_eq!(p.per_try_timeout, Some(Duration::from_secs(2)));
    assert_eq!(p.retry, RetryPolicy::default());
    assert_eq!(p.breaker.ejection_max, Duration::from_secs(60));
    assert!(matches!(p.endpoints[0], EndpointAddr::Dns { .. }));
    // defaults for a destination with only endpoints
    let cat = &c.services["catalog"];
    assert_eq!(cat.load_balancer, LoadBalancerKind::P2cEwma);
    assert_eq!(cat.retry.max_attempts, 3);
    assert_eq!(c.telemetry.service_name, "order-sidecar");
}

#[test]
fn env_overrides_what_kubernetes_varies() {
    let env: HashMap<&str, &str> = [
        ("WEIR_SERVICE", "checkout"),
        ("WEIR_INBOUND_ADDRESS", "0.0.0.0:5143"),
        ("WEIR_APP_ADDRESS", "127.0.0.1:9000"),
        ("WEIR_OUTBOUND_ADDRESS", "127.0.0.1:5140"),
        ("WEIR_ADMIN_ADDRESS", "0.0.0.0:5191"),
        ("WEIR_OUTBOUND_TRANSPARENT", "true"),
    ]
    .into();
    let lookup = |k: &str| env.get(k).map(|v| v.to_string());
    let c = SidecarConfig::from_yaml(SKETCH, &lookup).unwrap();
    assert_eq!(c.service, "checkout");
    assert_eq!(c.inbound.address.port(), 5143);
    assert_eq!(c.inbound.app.port(), 9000);
    assert_eq!(c.outbound.address.port(), 5140);
    assert_eq!(c.admin.port(), 5191);
    assert!(c.outbound.transparent);
    assert_eq!(c.effective.service, "checkout");
}

#[test]
fn bad_env_value_names_the_variable() {
    let lookup = |k: &str| (k == "WEIR_ADMIN_ADDRESS").then(|| "nowhere".to_owned());
    let e = SidecarConfig::from_yaml(SKETCH, &lookup).unwrap_err();
    assert_eq!(e.0[0].path, "$WEIR_ADMIN_ADDRESS");
}

#[test]
fn unknown_field_has_path_and_line() {
    let text = SKETCH.replace("    load_balancer: p2c_ewma", "    load_balancr: p2c_ewma");
    let e = SidecarConfig::from_yaml(&text, &no_env).unwrap_err();
    assert_eq!(e.0[0].path, "services.payment.load_balancr");
    let line = text
        .lines()
        .position(|l| l.contains("load_balancr"))
        .unwrap()
        + 1;
    assert_eq!(e.0[0].line, Some(line));
}

#[test]
fn every_semantic_problem_is_reported() {
    let text = SKETCH
        .replace(
            "max_concurrent_requests: 1000",
            "max_concurrent_requests: 0",
        )
        .replace("address: 127.0.0.1:4191", "address: 127.0.0.1:4140")
        .replace("endpoints: [127.0.0.1:4243]", "endpoints: []")
        .replace("max_attempts: 3", "max_attempts: 0");
    let e = SidecarConfig::from_yaml(&text, &no_env).unwrap_err();
    let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "inbound.max_concurrent_requests",
            "admin.address",
            "services.catalog.endpoints",
            "services.payment.retry.max_attempts"
        ],
        "{e}"
    );
}

#[test]
fn env_only_config_for_injected_pods() {
    let env: HashMap<&str, &str> = [
        ("WEIR_SERVICE", "catalog"),
        ("WEIR_APP_ADDRESS", "127.0.0.1:8081"),
        ("WEIR_MODE", "transparent"),
    ]
    .into();
    let lookup = |k: &str| env.get(k).map(|v| v.to_string());
    let c = SidecarConfig::from_env(&lookup).unwrap();
    assert_eq!(c.service, "catalog");
    assert_eq!(c.inbound.app.port(), 8081);
    assert!(c.outbound.transparent);
    assert!(c.services.is_empty());
    assert_eq!(c.outbound.opaque_ports, DEFAULT_OPAQUE_PORTS);
}

#[test]
fn limits_apply_and_a_body_limit_the_sidecar_would_ignore_is_refused() {
    let text = format!("{SKETCH}limits: {{ max_header_bytes: 2KiB, idle_timeout: 5s }}\n");
    let cfg = SidecarConfig::from_yaml(&text, &no_env).unwrap();
    assert_eq!(cfg.limits.max_header_bytes, 2048);
    assert_eq!(cfg.limits.idle_timeout, Duration::from_secs(5));

    let text = format!("{SKETCH}limits: {{ max_body_bytes: 1MiB }}\n");
    let e = SidecarConfig::from_yaml(&text, &no_env).unwrap_err();
    let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["limits.max_body_bytes"], "{e}");
}

#[test]
fn mesh_sections_parse_and_name_bad_fields_by_path() {
    let base = "service: order\ninbound:\n  address: 127.0.0.1:4143\n  app: 127.0.0.1:8082\n";
    let tail = "admin:\n  address: 127.0.0.1:4191\n";
    let ok = format!(
        "{base}  tls: {{ mode: strict }}\n  authorization:\n    default: deny\n    rules:\n      - {{ paths: [/v1/payments/*], methods: [post], identities: [spiffe://weir.local/ns/default/sa/order] }}\nservices:\n  payment:\n    endpoints: [127.0.0.1:4343]\n    tls: {{ identity: spiffe://weir.local/ns/default/sa/payment }}\n{tail}"
    );
    let cfg = SidecarConfig::from_yaml(&ok, &|_| None).unwrap();
    assert_eq!(cfg.inbound.tls, mesh::InboundTlsMode::Strict);
    assert_eq!(
        cfg.inbound.authorization.rules[0].methods,
        [http::Method::POST]
    );
    assert_eq!(
        cfg.services["payment"]
            .tls
            .identity
            .as_ref()
            .unwrap()
            .as_str(),
        "spiffe://weir.local/ns/default/sa/payment"
    );

    let unknown = format!("{base}  tls: {{ mod: strict }}\n{tail}");
    let err = SidecarConfig::from_yaml(&unknown, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("inbound.tls"), "{err}");
    let bad_id = format!(
        "{base}services:\n  payment:\n    endpoints: [127.0.0.1:4343]\n    tls: {{ mode: plaintext, identity: spiffe://Bad }}\n{tail}"
    );
    let err = SidecarConfig::from_yaml(&bad_id, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("services.payment.tls.identity"), "{err}");
}
