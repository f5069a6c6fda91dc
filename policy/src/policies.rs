//! The entry points: build from config, compile routes, check requests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, HeaderValue};

use crate::auth::Authenticator;
use crate::auth_failures::{self, AuthFailureLimit};
use crate::config::{AuthConfig, ConfigErrors, RateLimitsConfig, RouteAuthConfig};
use crate::cors::CorsVerdict;
use crate::identity::Identity;
use crate::ratelimit::headers::{self, Reported};
use crate::ratelimit::key::{self, KeyInput};
use crate::ratelimit::{Backend, LimitPolicy, Outcome, Settings};
use crate::rejection::{Rejection, RejectionKind};
use crate::route::{self, RoutePolicy, RouteRef};
use crate::state::PolicyState;

/// All policies of one config generation. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Policies {
    inner: Arc<Inner>,
}

struct Inner {
    auth: Authenticator,
    default_auth: Option<RouteAuthConfig>,
    settings: Settings,
    limits: HashMap<String, Arc<LimitPolicy>>,
    /// The failed-authentication throttle, unless turned off.
    auth_failures: Option<AuthFailureLimit>,
    state: PolicyState,
}

/// A request the policies let through.
#[derive(Debug)]
pub struct Admitted {
    /// The authenticated caller, if any (also written into the request's
    /// identity headers).
    pub identity: Option<Identity>,
    /// The client address after trusted-proxy handling (for access logs).
    pub client_ip: IpAddr,
    /// Headers to append to the upstream's response: rate-limit and CORS.
    pub response_headers: HeaderMap,
}

impl Policies {
    /// Builds the policies. Must run inside a tokio runtime: remote JWK sets
    /// start refreshing in the background and Redis clients are created
    /// (connecting lazily, so an unreachable Redis does not fail the build).
    /// Relative file paths are resolved against `base_dir`.
    pub fn build(
        auth: &AuthConfig,
        rate_limits: &RateLimitsConfig,
        base_dir: &Path,
        state: &PolicyState,
    ) -> Result<Self, ConfigErrors> {
        let mut errs = ConfigErrors::new();
        let authenticator = crate::auth::compile(auth, base_dir, Some(state), &mut errs);
        let settings = crate::ratelimit::compile(rate_limits, &mut errs);
        let failure_quota = auth_failures::compile(&auth.failure_limit, &mut errs);
        if let Some(d) = &auth.default {
            let probe = RouteRef {
                name: "",
                path: "auth",
                auth: None,
                rate_limit: Some(&[]),
                cors: None,
            };
            route::compile(
                &probe,
                Some(d),
                &authenticator,
                &settings,
                |_| None,
                &mut errs,
            );
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let mut limits = HashMap::new();
        for (name, spec) in &settings.policies {
            let backend = match &settings.redis {
                None => Backend::Local(state.local_limiter(name, spec.quota, settings.max_keys)),
                Some(r) => {
                    let redis = state.redis(r.url.expose(), r.timeout).map_err(|e| {
                        ConfigErrors::from(crate::config::ConfigError::new(
                            "rate_limits.redis.url",
                            e,
                        ))
                    })?;
                    let share = spec.quota.divided(r.replicas);
                    Backend::Redis {
                        redis,
                        on_error: r.on_error,
                        fallback: state.local_limiter(
                            &format!("{name}#fallback"),
                            share,
                            settings.max_keys,
                        ),
                        prefix: r.prefix.clone(),
                    }
                }
            };
            let policy = LimitPolicy {
                name: name.as_str().into(),
                spec: spec.clone(),
                backend,
            };
            limits.insert(name.clone(), Arc::new(policy));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                auth: authenticator,
                default_auth: auth.default.clone(),
                settings,
                limits,
                auth_failures: failure_quota
                    .map(|q| AuthFailureLimit::new(state, q, auth.failure_limit.max_keys)),
                state: state.clone(),
            }),
        })
    }

    /// Compiles one route's policies against this generation.
    pub fn route(&self, r: RouteRef<'_>) -> Result<RoutePolicy, ConfigErrors> {
        let mut errs = ConfigErrors::new();
        let inner = &self.inner;
        let mut rp = route::compile(
            &r,
            inner.default_auth.as_ref(),
            &inner.auth,
            &inner.settings,
            |name| inner.limits.get(name).cloned(),
            &mut errs,
        );
        let metrics = inner.state.metrics();
        rp.counters = rp
            .limits
            .iter()
            .map(|l| metrics.decision_counters(r.name, &l.name))
            .collect();
        rp.limit_policy_header = headers::policy_header(&rp.limits);
        errs.into_result(rp)
    }

    /// The client's address: `peer`, or, when `peer` is a trusted proxy, the
    /// first untrusted hop of `X-Forwarded-For` from the right.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        key::client_ip(peer, headers, &self.inner.settings.trusted)
    }

    /// Answers a CORS preflight for `route` without touching auth or rate
    /// limits: `Some` (204 with the CORS headers, or 403 when refused) when
    /// the route has `cors:` and the request is a preflight (`OPTIONS` with
    /// `Origin` and `Access-Control-Request-Method`), `None` otherwise.
    /// [`Policies::check`] does the same first thing; this is for a gateway
    /// that picks the route by the method the preflight asks about.
    pub fn preflight(&self, route: &RoutePolicy, parts: &Parts) -> Option<Rejection> {
        let cors = route.cors.as_ref()?;
        let request_id = parts.headers.get("x-request-id").cloned();
        match cors.evaluate(parts) {
            CorsVerdict::Preflight(h) => {
                Some(Rejection::new(RejectionKind::CorsPreflight, request_id, h))
            }
            CorsVerdict::Refused(why) => Some(Rejection::new(
                RejectionKind::CorsRefused(why),
                request_id,
                HeaderMap::new(),
            )),
            CorsVerdict::None | CorsVerdict::Actual(_) => None,
        }
    }

    /// Applies the route's policies to a request, in this order: identity
    /// headers sent by the client are removed (on every route), CORS
    /// (preflights answered here), the failed-authentication throttle of the
    /// client address (before any credential is looked at), authentication
    /// and scopes (identity headers added, credentials removed unless
    /// forwarded), then every rate limit of the route, checked together and
    /// charged only if all admit (the strictest decides).
    ///
    /// `Err` means: do not forward, answer with
    /// [`Rejection::into_response`]. Call it for every request, also on
    /// routes without policies, so forged identity headers are always
    /// stripped.
    pub async fn check(
        &self,
        route: &RoutePolicy,
        parts: &mut Parts,
        peer_ip: IpAddr,
    ) -> Result<Admitted, Rejection> {
        let inner = &*self.inner;
        let metrics = inner.state.metrics();
        let request_id: Option<HeaderValue> = parts.headers.get("x-request-id").cloned();
        let client_ip = self.client_ip(peer_ip, &parts.headers);
        inner.auth.strip_identity(parts);

        let mut response_headers = HeaderMap::new();
        if let Some(cors) = &route.cors {
            match cors.evaluate(parts) {
                CorsVerdict::None => {}
                CorsVerdict::Actual(h) => response_headers = h,
                CorsVerdict::Preflight(h) => {
                    return Err(Rejection::new(RejectionKind::CorsPreflight, request_id, h));
                }
                CorsVerdict::Refused(why) => {
                    return Err(Rejection::new(
                        RejectionKind::CorsRefused(why),
                        request_id,
                        HeaderMap::new(),
                    ));
                }
            }
        }

        let identity = match &route.auth {
            None => {
                // Nothing is verified on this route, so every credential
                // is unused.
                if !inner.auth.forward_unused {
                    inner.auth.remove_credentials(parts);
                }
                None
            }
            Some(ra) => {
                // A request that will be checked (it carries a credential,
                // or the route requires one) first passes the failure
                // throttle of its client address.
                let checked = inner.auth.chosen(ra, parts).is_some()
                    || !ra.allows(crate::config::AuthMethod::None);
                let throttle = inner.auth_failures.as_ref().filter(|_| checked);
                if let Some(t) = throttle
                    && let Err(retry_after) = t.admits(client_ip)
                {
                    metrics.auth_failure(&route.name, "too_many_failures");
                    return Err(Rejection::rate_limited(
                        t.name.clone(),
                        retry_after,
                        request_id,
                        response_headers,
                    ));
                }
                match inner.auth.authenticate(ra, parts).await {
                    Ok(id) => id,
                    Err(e) => {
                        if let Some(t) = throttle
                            && e.kind == crate::AuthErrorKind::Unauthenticated
                        {
                            t.record_failure(client_ip);
                        }
                        metrics.auth_failure(&route.name, e.reason);
                        return Err(Rejection::auth(e, &ra.scopes, request_id, response_headers));
                    }
                }
            }
        };

        if route.limits.is_empty() {
            return Ok(Admitted {
                identity,
                client_ip,
                response_headers,
            });
        }
        let input = KeyInput {
            route: &route.name,
            client_ip,
            identity: identity.as_ref(),
            headers: &parts.headers,
        };
        // Check all, then commit: a request any limit refuses spends nothing.
        let outcomes =
            crate::ratelimit::check_all(&route.limits, &input, &metrics.backend_errors).await;
        for (i, outcome) in outcomes.iter().enumerate() {
            if let Some(c) = route.counters.get(i) {
                c.0[outcome.result_index()].inc();
            }
        }
        let reported: Vec<Reported<'_>> = route
            .limits
            .iter()
            .zip(&outcomes)
            .map(|(p, o)| Reported {
                name: &p.name,
                quota: &p.spec.quota,
                decision: o.decision(),
            })
            .collect();
        headers::write(
            inner.settings.headers,
            route.limit_policy_header.as_ref(),
            &reported,
            &mut response_headers,
        );

        // The strictest decides: a closed failure first, then the longest wait.
        if let Some((p, _)) = route
            .limits
            .iter()
            .zip(&outcomes)
            .find(|(_, o)| matches!(o, Outcome::FailedClosed))
        {
            return Err(Rejection::new(
                RejectionKind::LimiterUnavailable {
                    policy: p.name.clone(),
                },
                request_id,
                response_headers,
            ));
        }
        let denied = route
            .limits
            .iter()
            .zip(&outcomes)
            .filter_map(|(p, o)| o.decision().filter(|d| !d.allowed).map(|d| (p, d)))
            .max_by_key(|(_, d)| d.retry_after);
        if let Some((p, d)) = denied {
            return Err(Rejection::rate_limited(
                p.name.clone(),
                d.retry_after,
                request_id,
                response_headers,
            ));
        }
        Ok(Admitted {
            identity,
            client_ip,
            response_headers,
        })
    }
}
