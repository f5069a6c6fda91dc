//! The problem for an error of a resilience stack (balancer, breaker,
//! timeouts, retries, pool): one mapping from error to status, `type` and
//! title, so every proxy answers the same failure the same way.

use std::error::Error as StdError;

use http::{HeaderName, HeaderValue, StatusCode};

use super::Problem;
use crate::balance::NoEndpoints;
use crate::resilience::retry::RetriesExhausted;
use crate::resilience::{ATTEMPTS_HEADER, ErrorClass, TimeoutError, classify_error};

/// A stable kind for an error of a resilience stack: the problem `type` slug,
/// and the label metrics, spans and logs use.
pub fn upstream_error_kind(err: &(dyn StdError + 'static)) -> &'static str {
    if find::<NoEndpoints>(err).is_some() {
        return "no-endpoints";
    }
    match classify_error(err) {
        ErrorClass::CircuitOpen => "circuit-open",
        ErrorClass::Timeout => "upstream-timeout",
        ErrorClass::Connect => "upstream-connect-failed",
        ErrorClass::Other => "upstream-error",
    }
}

/// The problem for a failed call to `upstream` (a destination or upstream
/// name) that failed with `err`. When retries ran out it says how many tries
/// were made (an `attempts` member and the `x-retry-attempts` header).
pub fn upstream_error(upstream: &str, err: &(dyn StdError + 'static)) -> Problem {
    let kind = upstream_error_kind(err);
    let (status, title, detail) = match kind {
        "no-endpoints" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "No endpoints",
            format!("destination {upstream} has no endpoints"),
        ),
        "circuit-open" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Circuit open",
            format!("every endpoint of {upstream} is ejected after failures; failing fast"),
        ),
        "upstream-timeout" => (
            StatusCode::GATEWAY_TIMEOUT,
            "Upstream timed out",
            find::<TimeoutError>(err)
                .map_or_else(|| err.to_string(), |t| format!("{upstream}: {t}")),
        ),
        "upstream-connect-failed" => (
            StatusCode::BAD_GATEWAY,
            "Upstream connection failed",
            format!("cannot connect to {upstream}: {}", error_chain(err)),
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "Upstream error",
            format!("{upstream}: {}", error_chain(err)),
        ),
    };
    let mut problem = Problem::new(status, kind, title)
        .detail(detail)
        .extension("destination", upstream);
    if let Some(ex) = find::<RetriesExhausted>(err) {
        problem = problem.extension("attempts", ex.attempts).header(
            HeaderName::from_static(ATTEMPTS_HEADER),
            HeaderValue::from(ex.attempts),
        );
    }
    problem
}

/// Every message in an error's source chain, joined with `: `.
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::{CircuitOpen, TimeoutKind};
    use std::time::Duration;

    #[test]
    fn each_stack_error_has_its_status_and_type() {
        let open: Box<dyn StdError + Send + Sync> = Box::new(CircuitOpen::new());
        let p = upstream_error("svc", &*open);
        assert_eq!(
            (p.status(), p.slug()),
            (StatusCode::SERVICE_UNAVAILABLE, "circuit-open")
        );
        let t = TimeoutError::new(TimeoutKind::PerTry, Duration::from_secs(1));
        let p = upstream_error("svc", &t);
        assert_eq!(
            (p.status(), p.slug()),
            (StatusCode::GATEWAY_TIMEOUT, "upstream-timeout")
        );
        let none = NoEndpoints("svc".into());
        assert_eq!(upstream_error("svc", &none).slug(), "no-endpoints");
        let other = std::io::Error::other("reset");
        let p = upstream_error("svc", &other);
        assert_eq!(
            (p.status(), p.slug()),
            (StatusCode::BAD_GATEWAY, "upstream-error")
        );
        assert_eq!(p.to_json()["destination"], "svc");
    }
}
