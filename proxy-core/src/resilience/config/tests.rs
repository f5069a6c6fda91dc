use super::*;
use crate::config::parse_yaml;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Dest {
    timeouts: TimeoutsConfig,
    retry: RetryConfig,
    circuit_breaker: CircuitBreakerConfig,
}

const SKETCH: &str = r#"
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
"#;

#[test]
fn sketch_parses_into_the_defaults() {
    let d: Dest = parse_yaml(SKETCH).unwrap();
    let mut errs = ConfigErrors::new();
    d.timeouts.validate("t", &mut errs);
    let (policy, budget) = d.retry.validate("r", &mut errs);
    let breaker = d.circuit_breaker.validate("c", &mut errs);
    assert!(errs.is_empty(), "{errs}");
    assert_eq!(policy, RetryPolicy::default());
    assert_eq!(budget, BudgetSettings::default());
    assert_eq!(breaker.consecutive_failures, Some(5));
    assert_eq!(breaker.success_rate.unwrap().min_requests, 20);
    assert_eq!(breaker.ejection_max, Duration::from_secs(60));
    assert_eq!(d.retry, RetryConfig::default());
}

#[test]
fn bad_condition_and_unknown_field_name_the_path() {
    let e = parse_yaml::<RetryConfig>("on: [connect_error, 404]\n").unwrap_err();
    assert_eq!(e.0[0].path, "on[1]");
    assert!(e.0[0].message.contains("invalid retry condition"), "{e}");
    let e = parse_yaml::<RetryConfig>("max_attempts: 2\nbudgett: {}\n").unwrap_err();
    assert_eq!(e.0[0].line, Some(2));
    let e = parse_yaml::<RetryConfig>("backoff: { base: 25 }\n").unwrap_err();
    assert_eq!(e.0[0].path, "backoff.base");
}

#[test]
fn validation_reports_every_problem() {
    let r: RetryConfig =
        parse_yaml("max_attempts: 0\nbackoff: { base: 1s, max: 10ms }\nbudget: { ratio: -1 }\n")
            .unwrap();
    let mut errs = ConfigErrors::new();
    r.validate("services.a.retry", &mut errs);
    let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "services.a.retry.max_attempts",
            "services.a.retry.backoff.base",
            "services.a.retry.budget.ratio"
        ]
    );
    let t: TimeoutsConfig = parse_yaml("per_try: 5s\noverall: 1s\n").unwrap();
    let mut errs = ConfigErrors::new();
    t.validate("t", &mut errs);
    assert_eq!(errs.len(), 1);
}

#[test]
fn conditions_round_trip() {
    let r: RetryConfig = parse_yaml("on: [grpc_internal, '503', 429]\n").unwrap();
    assert_eq!(
        r.on,
        vec![
            RetryOn::Grpc(13),
            RetryOn::Status(503),
            RetryOn::Status(429)
        ]
    );
    let json = serde_json::to_string(&r.on).unwrap();
    assert_eq!(json, r#"["grpc_internal",503,429]"#);
}
