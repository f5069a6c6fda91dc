//! A route's policies: its auth requirements, rate limits and CORS rules.

use std::sync::Arc;

use crate::auth::{Authenticator, RouteAuth};
use crate::config::{ConfigErrors, CorsConfig, RouteAuthConfig};
use crate::cors::Cors;
use crate::metrics::DecisionCounters;
use crate::ratelimit::{LimitPolicy, Settings};

/// The policy parts of one route in the gateway's config, by reference.
#[derive(Clone, Copy, Debug)]
pub struct RouteRef<'a> {
    /// The route's name (metric label, `route` key part).
    pub name: &'a str,
    /// Where the route sits in the file, for error paths, e.g. `routes[2]`.
    pub path: &'a str,
    /// The route's `auth:`; `None` uses `auth.default` (or no auth).
    pub auth: Option<&'a RouteAuthConfig>,
    /// The route's `rate_limit:`; `None` uses `rate_limits.default`.
    pub rate_limit: Option<&'a [String]>,
    pub cors: Option<&'a CorsConfig>,
}

/// One route's compiled policies; build with [`crate::Policies::route`],
/// keep it with the route. Cheap to clone.
#[derive(Clone)]
pub struct RoutePolicy {
    pub(crate) name: Arc<str>,
    pub(crate) auth: Option<RouteAuth>,
    pub(crate) limits: Vec<Arc<LimitPolicy>>,
    /// One set per entry of `limits`, filled by `Policies::route`.
    pub(crate) counters: Vec<DecisionCounters>,
    /// `RateLimit-Policy` of `limits`, rendered once (see `ratelimit::headers`).
    pub(crate) limit_policy_header: Option<http::HeaderValue>,
    pub(crate) cors: Option<Arc<Cors>>,
}

impl std::fmt::Debug for RoutePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutePolicy")
            .field("name", &self.name)
            .field("auth", &self.auth)
            .field(
                "limits",
                &self.limits.iter().map(|l| &*l.name).collect::<Vec<_>>(),
            )
            .field("cors", &self.cors.is_some())
            .finish()
    }
}

impl RoutePolicy {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Checks a route's references (policy names, auth methods, CORS) and
/// resolves its limits through `bind` (which the validator answers with
/// `None`: nothing to bind to).
pub(crate) fn compile(
    r: &RouteRef<'_>,
    default_auth: Option<&RouteAuthConfig>,
    auth: &Authenticator,
    settings: &Settings,
    mut bind: impl FnMut(&str) -> Option<Arc<LimitPolicy>>,
    errs: &mut ConfigErrors,
) -> RoutePolicy {
    let (auth_cfg, auth_at) = match (r.auth, default_auth) {
        (Some(a), _) => (Some(a), format!("{}.auth", r.path)),
        (None, Some(d)) => (Some(d), "auth.default".to_owned()),
        (None, None) => (None, String::new()),
    };
    let route_auth = auth_cfg.map(|a| crate::auth::compile::route_auth(a, &auth_at, auth, errs));
    let (names, names_at) = match r.rate_limit {
        Some(list) => (list, format!("{}.rate_limit", r.path)),
        None => (
            settings.default.as_slice(),
            "rate_limits.default".to_owned(),
        ),
    };
    let mut limits = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if !settings.policies.contains_key(name) {
            errs.push(
                format!("{names_at}[{i}]"),
                format!("no policy named {name} in rate_limits.policies"),
            );
            continue;
        }
        if names[..i].contains(name) {
            errs.push(
                format!("{names_at}[{i}]"),
                format!("policy {name} listed twice"),
            );
            continue;
        }
        limits.extend(bind(name));
    }
    let cors = r
        .cors
        .map(|c| Arc::new(Cors::compile(c, &format!("{}.cors", r.path), errs)));
    RoutePolicy {
        name: r.name.into(),
        auth: route_auth,
        limits,
        counters: Vec::new(),
        limit_policy_header: None,
        cors,
    }
}
