//! What the gateway's dashboard shows (`GET /dashboard` on the admin port).
//!
//! Built from named fields of the running snapshot and the metrics registry,
//! never from the config's serialisation: API keys, JWT secrets, Redis
//! passwords and collector headers are simply not among the fields read
//! here, and a secret added to the config later is not either. Header-match
//! values are left out too (a route may match on a shared-secret header).
//!
//! Figures per route come from `weir_requests_total`,
//! `weir_request_duration_seconds` and `weir_ratelimit_decisions_total`,
//! per upstream from `weir_upstream_errors_total`; endpoint health and
//! ejection from the endpoint group itself. `identity` is the gateway's
//! workload identity (SPIFFE ID and expiry; `null` without one).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use proxy_core::admin::dashboard::{Counts, DashboardSource, RateTracker, Samples};
use proxy_core::identity::CredentialsWatch;
use proxy_core::reload::ReloadMetrics;
use serde_json::{Map, Value, json};

use crate::routing::RouteConfig;
use crate::snapshot::Snapshot;

/// How long a slow request stays on the page.
const SLOW_WINDOW: Duration = Duration::from_secs(120);

/// The last reload attempts, recorded by the reloader's build step.
#[derive(Debug, Default)]
pub struct ReloadLog {
    inner: Mutex<ReloadLogInner>,
}

#[derive(Debug, Default)]
struct ReloadLogInner {
    last_attempt: Option<(SystemTime, bool)>,
    last_error: Option<(SystemTime, String)>,
}

impl ReloadLog {
    /// Records one reload's outcome (not the first load).
    pub fn record(&self, outcome: Result<(), String>) {
        let mut l = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = SystemTime::now();
        l.last_attempt = Some((now, outcome.is_ok()));
        if let Err(e) = outcome {
            l.last_error = Some((now, e));
        }
    }
}

/// The gateway's [`DashboardSource`].
pub struct GatewayDashboard {
    pub(crate) snapshot: Arc<ArcSwap<Snapshot>>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) reloads: ReloadMetrics,
    pub(crate) reload_log: Arc<ReloadLog>,
    pub(crate) routes: RateTracker,
    pub(crate) upstreams: RateTracker,
    pub(crate) identity: Option<CredentialsWatch>,
}

impl GatewayDashboard {
    pub fn new(
        snapshot: Arc<ArcSwap<Snapshot>>,
        registry: Arc<Registry>,
        reloads: ReloadMetrics,
        reload_log: Arc<ReloadLog>,
    ) -> Self {
        Self {
            snapshot,
            registry,
            reloads,
            reload_log,
            routes: RateTracker::default(),
            upstreams: RateTracker::default(),
            identity: None,
        }
    }

    /// Shows the gateway's workload identity, read from `watch` per update.
    pub fn with_identity(mut self, watch: Option<CredentialsWatch>) -> Self {
        self.identity = watch;
        self
    }

    /// `{spiffe_id, not_after, expires_in_seconds, trust_anchors}`, with
    /// `spiffe_id: null` before the first certificate, `null` without an
    /// identity.
    fn identity_view(&self) -> Value {
        let Some(watch) = &self.identity else {
            return Value::Null;
        };
        match weir_identity::source::state_json(watch) {
            Value::Null => json!({ "spiffe_id": null }),
            v => v,
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl DashboardSource for GatewayDashboard {
    fn kind(&self) -> &'static str {
        "gateway"
    }

    fn snapshot(&self) -> Map<String, Value> {
        let snap = self.snapshot.load_full();
        let samples = Samples::read(&self.registry);
        let mut out = Map::new();
        out.insert("config".into(), self.config_view(&snap));
        out.insert("routes".into(), self.routes_view(&snap, &samples));
        out.insert("upstreams".into(), self.upstreams_view(&snap, &samples));
        out.insert("tls".into(), tls_view(&snap));
        out.insert("identity".into(), self.identity_view());
        out.insert(
            "connections".into(),
            json!(samples.sum("weir_active_connections", &[])),
        );
        out
    }
}

impl GatewayDashboard {
    fn config_view(&self, snap: &Snapshot) -> Value {
        let log = self
            .reload_log
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        json!({
            "generation": snap.generation,
            "digest": snap.digest,
            "loaded_at_unix_ms": unix_ms(snap.loaded_at),
            "reloads_ok": self.reloads.count(true),
            "reloads_failed": self.reloads.count(false),
            "last_reload": log.last_attempt.map(|(t, ok)| json!({"at_unix_ms": unix_ms(t), "ok": ok})),
            "last_error": log.last_error.as_ref().map(|(t, e)| json!({"at_unix_ms": unix_ms(*t), "message": e})),
        })
    }

    fn routes_view(&self, snap: &Snapshot, samples: &Samples) -> Value {
        let config = &snap.config;
        let counts = config
            .routes
            .iter()
            .map(|r| {
                let route = [("route", r.name.as_str())];
                let limited = samples.sum(
                    "weir_ratelimit_decisions_total",
                    &[("route", &r.name), ("result", "limited")],
                ) + samples.sum(
                    "weir_ratelimit_decisions_total",
                    &[("route", &r.name), ("result", "fallback_limited")],
                );
                let c = Counts {
                    requests: samples.sum("weir_requests_total", &route),
                    errors: samples.sum(
                        "weir_requests_total",
                        &[("route", &r.name), ("status_class", "5xx")],
                    ),
                    buckets: samples.buckets("weir_request_duration_seconds", &route),
                    other: BTreeMap::from([("rate_limited".to_owned(), limited)]),
                };
                (r.name.clone(), c)
            })
            .collect();
        let rates = self.routes.update(counts);
        let routes: Vec<Value> = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let slowest = snap
                    .route_outliers
                    .get(i)
                    .map(|ring| ring.recent(SLOW_WINDOW))
                    .unwrap_or_default();
                json!({
                    "name": r.name,
                    "match": match_view(r),
                    "version": r.version,
                    "deprecated": r.deprecated.as_ref().map(|d| json!({
                        "since": d.since, "sunset": d.sunset, "link": d.link,
                    })),
                    "upstream": r.upstream,
                    "split": r.split.iter().map(|s| json!({"upstream": s.upstream, "weight": s.weight})).collect::<Vec<_>>(),
                    "timeout_ms": r.timeout.map(|t| t.get().as_millis() as u64),
                    "policies": policies_view(snap, r),
                    "traffic": rates.get(&r.name),
                    "slowest": slowest,
                })
            })
            .collect();
        Value::Array(routes)
    }

    fn upstreams_view(&self, snap: &Snapshot, samples: &Samples) -> Value {
        let mut names: Vec<&String> = snap.upstreams.keys().collect();
        names.sort();
        let counts = names
            .iter()
            .map(|name| {
                let mut other = BTreeMap::new();
                for s in samples.named("weir_upstream_errors_total") {
                    if s.label("upstream") == name.as_str() {
                        *other.entry(s.label("kind").to_owned()).or_insert(0.0) += s.value;
                    }
                }
                (
                    (*name).clone(),
                    Counts {
                        other,
                        ..Counts::default()
                    },
                )
            })
            .collect();
        let rates = self.upstreams.update(counts);
        let list: Vec<Value> = names
            .iter()
            .map(|name| {
                let u = &snap.upstreams[*name];
                let endpoints: Vec<Value> = u
                    .group
                    .endpoints()
                    .iter()
                    .map(|e| {
                        let b = e.ejection().snapshot();
                        json!({
                            "address": e.addr.to_string(),
                            "healthy": e.is_healthy(),
                            "available": e.is_available(),
                            "breaker": b.state.as_str(),
                            "ejected_for_ms": b.ejected_for_ms,
                            "ejections": b.ejections,
                            "in_flight": e.in_flight(),
                        })
                    })
                    .collect();
                json!({
                    "name": name,
                    "load_balancer": u.config.load_balancer,
                    "protocol": u.config.protocol,
                    "health_check": u.config.health_check.as_ref().map(|h| json!({
                        "path": h.path,
                        "interval": h.interval.to_string(),
                        "healthy": h.healthy,
                        "unhealthy": h.unhealthy,
                    })),
                    "endpoints": endpoints,
                    "errors_per_second": rates.get(*name).map(|r| &r.per_second),
                })
            })
            .collect();
        Value::Array(list)
    }
}

/// The match as a few display fields; header values are withheld.
fn match_view(r: &RouteConfig) -> Value {
    let m = &r.matches;
    let mut hosts: Vec<&str> = m.host.iter().map(String::as_str).collect();
    hosts.extend(m.hosts.iter().map(String::as_str));
    let (path, kind) = if let Some(p) = &m.path {
        (p.as_str(), "exact")
    } else if let Some(p) = &m.path_template {
        (p.as_str(), "template")
    } else {
        (m.path_prefix.as_deref().unwrap_or("/"), "prefix")
    };
    let headers: Vec<String> = m
        .headers
        .iter()
        .map(|h| match (h.present, &h.value) {
            (Some(false), _) => format!("!{}", h.name),
            (_, Some(_)) => format!("{}=…", h.name),
            _ => h.name.clone(),
        })
        .collect();
    json!({
        "hosts": hosts,
        "path": path,
        "path_kind": kind,
        "methods": m.methods,
        "headers": headers,
    })
}

/// Which credentials, scopes, rate-limit policies and CORS a route applies
/// (names only).
fn policies_view(snap: &Snapshot, r: &RouteConfig) -> Value {
    let auth = r.auth.as_ref().or(snap.config.auth.default.as_ref());
    let auth_text = auth.map(|a| {
        let methods: Vec<String> = a
            .any_of
            .iter()
            .map(|m| {
                serde_json::to_value(m)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect();
        let mut t = format!("auth: {}", methods.join(" | "));
        if !a.scopes.is_empty() {
            t.push_str(&format!(" [{}]", a.scopes.join(", ")));
        }
        t
    });
    let limits = r
        .rate_limit
        .clone()
        .unwrap_or_else(|| snap.config.rate_limits.default.clone());
    json!({
        "auth": auth_text,
        "rate_limit": limits,
        "cors": r.cors.is_some(),
    })
}

fn tls_view(snap: &Snapshot) -> Value {
    let now = SystemTime::now();
    Value::Array(
        snap.certificates
            .iter()
            .map(|c| match &c.summary {
                Ok(s) => json!({
                    "listener": c.listener,
                    "names": s.names,
                    "not_after_unix_ms": s.not_after_unix_ms,
                    "days_left": s.days_left(now),
                }),
                Err(e) => json!({"listener": c.listener, "error": e}),
            })
            .collect(),
    )
}
