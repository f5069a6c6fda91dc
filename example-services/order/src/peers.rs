//! Calls to the catalog and payment services, with bounded retries.
//!
//! Every call the saga makes is idempotent on the peer's side (reservations
//! are keyed by order id, charges by an idempotency key derived from the order
//! id, commit/release/refund are state transitions), so a call whose outcome is
//! unknown (timeout, dropped connection, `5xx`) is simply made again. A
//! definite answer (`2xx`, `4xx`) ends the retries and goes to the saga.

use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use serde::Serialize;
use service_kit::{Outbound, OutboundResponse};

use crate::config::Config;

/// The outcome of a call after retries.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A definite answer: `2xx` or `4xx` (except `408`/`429`).
    Definite(OutboundResponse),
    /// Still no definite answer after every try; the step must be retried later.
    Unknown(String),
}

/// Calls `method url` up to `config.call_attempts` times.
pub(crate) async fn call<B: Serialize>(
    outbound: &Outbound,
    config: &Config,
    method: Method,
    url: &str,
    incoming: &HeaderMap,
    extra: &[(&str, &str)],
    body: Option<&B>,
) -> Reply {
    let attempts = config.call_attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        match outbound
            .send_json_attempt(method.clone(), url, incoming, extra, body, attempt)
            .await
        {
            Ok(response) if is_definite(response.status) => return Reply::Definite(response),
            Ok(response) => {
                last = format!("{} answered {}", url, response.status);
            }
            Err(error) => {
                last = service_kit::server::error_chain(&error);
            }
        }
        tracing::info!(%url, attempt, attempts, reason = %last, "call failed, will retry");
        if attempt < attempts {
            tokio::time::sleep(backoff(config.retry_backoff, attempt)).await;
        }
    }
    Reply::Unknown(last)
}

fn is_definite(status: StatusCode) -> bool {
    (status.is_success() || status.is_client_error())
        && status != StatusCode::REQUEST_TIMEOUT
        && status != StatusCode::TOO_MANY_REQUESTS
}

/// Exponential backoff with full jitter, capped at 2 s.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(10).saturating_sub(1));
    let cap = exp.min(Duration::from_secs(2));
    let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(millis / 2 + fastrand::u64(0..=millis / 2))
}

/// The `detail` of a problem body, or the status when there is none.
pub(crate) fn problem_detail(response: &OutboundResponse) -> String {
    serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
        .unwrap_or_else(|| format!("status {}", response.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        for attempt in 1..20 {
            let d = backoff(base, attempt);
            assert!(d <= Duration::from_secs(2));
        }
        assert!(backoff(base, 1) <= Duration::from_millis(100));
        assert!(backoff(base, 3) >= Duration::from_millis(200));
    }

    #[test]
    fn only_server_trouble_is_retried() {
        assert!(is_definite(StatusCode::CREATED));
        assert!(is_definite(StatusCode::PAYMENT_REQUIRED));
        assert!(is_definite(StatusCode::CONFLICT));
        assert!(!is_definite(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!is_definite(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_definite(StatusCode::BAD_GATEWAY));
    }
}
