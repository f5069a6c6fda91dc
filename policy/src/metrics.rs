//! The policy metrics; they live in [`crate::PolicyState`] so counts survive
//! config reloads.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::ratelimit::FailureLog;

/// Values of the `result` label, indexed by [`crate::ratelimit::Outcome::result_index`].
pub(crate) const RESULTS: [&str; 6] = [
    "admitted",
    "limited",
    "failed_open",
    "failed_closed",
    "fallback_admitted",
    "fallback_limited",
];

/// `weir_ratelimit_decisions_total` for one route and policy, one per result.
#[derive(Clone, Debug, Default)]
pub(crate) struct DecisionCounters(pub(crate) [Counter; 6]);

pub(crate) struct Metrics {
    /// `weir_auth_failures_total{route,reason}`
    pub(crate) auth_failures: Family<[(&'static str, String); 2], Counter>,
    /// `weir_ratelimit_decisions_total{route,policy,result}`
    pub(crate) decisions: Family<[(&'static str, String); 3], Counter>,
    /// `weir_ratelimit_backend_errors_total{policy}`, plus the log throttle.
    pub(crate) backend_errors: FailureLog,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            auth_failures: Family::default(),
            decisions: Family::default(),
            backend_errors: FailureLog::new(),
        }
    }

    pub(crate) fn auth_failure(&self, route: &str, reason: &str) {
        self.auth_failures
            .get_or_create(&[("route", route.to_owned()), ("reason", reason.to_owned())])
            .inc();
    }

    /// The six decision counters of one route and policy, created when the
    /// route is compiled so the request path only increments (no label
    /// allocation, no family lock).
    pub(crate) fn decision_counters(&self, route: &str, policy: &str) -> DecisionCounters {
        DecisionCounters(RESULTS.map(|result| {
            self.decisions
                .get_or_create(&[
                    ("route", route.to_owned()),
                    ("policy", policy.to_owned()),
                    ("result", result.to_owned()),
                ])
                .clone()
        }))
    }

    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "weir_auth_failures",
            "Requests rejected by authentication or authorization, by route and reason",
            self.auth_failures.clone(),
        );
        registry.register(
            "weir_ratelimit_decisions",
            "Rate-limit decisions by route, policy and result",
            self.decisions.clone(),
        );
        registry.register(
            "weir_ratelimit_backend_errors",
            "Rate-limit backend (Redis) failures, by policy",
            self.backend_errors.counter.clone(),
        );
    }
}
