//! What the retry layer retries, how often, and how long it waits in between.

use std::fmt;
use std::time::Duration;

use http::{Method, StatusCode};

use crate::resilience::classify::{self, ErrorClass};

/// Why a try is being retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// The connection could not be established.
    ConnectError,
    /// The per-try timeout fired.
    Timeout,
    /// The response had a configured status.
    Status(StatusCode),
    /// The gRPC response had a configured `grpc-status`.
    Grpc(u32),
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryReason::ConnectError => f.write_str("connect_error"),
            RetryReason::Timeout => f.write_str("timeout"),
            RetryReason::Status(s) => write!(f, "{}", s.as_u16()),
            RetryReason::Grpc(c) => write!(f, "grpc_{c}"),
        }
    }
}

/// The retry policy of one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries in total, the first one included (1 disables retries).
    pub max_attempts: u32,
    /// Retry when the connection could not be established. Such a request never
    /// left the proxy, so this applies to every method.
    pub on_connect_error: bool,
    /// Response statuses to retry (idempotent methods only, unless
    /// `non_idempotent`). A per-try timeout counts as a 504.
    pub statuses: Vec<StatusCode>,
    /// `grpc-status` codes to retry.
    pub grpc_codes: Vec<u32>,
    /// First backoff cap; each retry doubles it, up to `backoff_max`. The actual
    /// wait is uniformly random below the cap ("full jitter").
    pub backoff_base: Duration,
    /// The largest backoff cap.
    pub backoff_max: Duration,
    /// Also retry methods that are not idempotent (POST, PATCH): only for
    /// destinations that deduplicate, e.g. on an `Idempotency-Key`.
    pub non_idempotent: bool,
    /// Largest request body buffered for replay; larger bodies are not retried.
    pub max_replay_body: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            on_connect_error: true,
            statuses: vec![
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::GATEWAY_TIMEOUT,
            ],
            grpc_codes: vec![classify::grpc::UNAVAILABLE],
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            non_idempotent: false,
            max_replay_body: 64 * 1024,
        }
    }
}

impl RetryPolicy {
    /// Whether retries on responses may apply to `method`.
    pub fn method_allowed(&self, method: &Method) -> bool {
        self.non_idempotent || is_idempotent(method)
    }

    /// Whether a request could be retried at all. A gRPC call (always a POST)
    /// may be retried on its configured `grpc-status` codes whatever its HTTP
    /// method: in gRPC, idempotency is not expressed by the method, and the
    /// codes are the operator's choice (by default only `UNAVAILABLE`, which
    /// says the call was not processed).
    pub(crate) fn may_retry(&self, method: &Method, grpc_request: bool) -> bool {
        self.max_attempts > 1
            && (self.on_connect_error
                || self.method_allowed(method)
                || (grpc_request && !self.grpc_codes.is_empty()))
    }

    /// The retry reason for a response head, if any: statuses when the method
    /// allows it (`method_ok`), gRPC codes when `grpc_ok` (the method allows it
    /// or the request is a gRPC call).
    pub(crate) fn response_reason(
        &self,
        method_ok: bool,
        grpc_ok: bool,
        status: StatusCode,
        grpc: Option<u32>,
    ) -> Option<RetryReason> {
        if method_ok && self.statuses.contains(&status) {
            return Some(RetryReason::Status(status));
        }
        grpc.filter(|c| grpc_ok && self.grpc_codes.contains(c))
            .map(RetryReason::Grpc)
    }

    /// The retry reason for an error, if any.
    pub(crate) fn error_reason(
        &self,
        method_ok: bool,
        err: &(dyn std::error::Error + 'static),
    ) -> Option<RetryReason> {
        match classify::classify_error(err) {
            ErrorClass::Connect if self.on_connect_error => Some(RetryReason::ConnectError),
            ErrorClass::Timeout
                if method_ok && self.statuses.contains(&StatusCode::GATEWAY_TIMEOUT) =>
            {
                Some(RetryReason::Timeout)
            }
            _ => None,
        }
    }

    /// The wait before retry number `retry` (1 for the first retry): uniform in
    /// `[0, min(max, base × 2^(retry-1))]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(31);
        let cap = self
            .backoff_base
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// RFC 9110 §9.2.2 idempotent methods.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_full_jitter() {
        let p = RetryPolicy::default();
        for retry in 1..10 {
            let cap = (p.backoff_base * (1 << (retry - 1))).min(p.backoff_max);
            for _ in 0..50 {
                assert!(p.backoff(retry) <= cap);
            }
        }
        // jitter: not all the same
        let samples: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(3)).collect();
        assert!(samples.len() > 1);
    }

    #[test]
    fn statuses_only_for_allowed_methods() {
        let p = RetryPolicy::default();
        assert!(p.method_allowed(&Method::GET));
        assert!(!p.method_allowed(&Method::POST));
        assert_eq!(
            p.response_reason(true, true, StatusCode::SERVICE_UNAVAILABLE, None),
            Some(RetryReason::Status(StatusCode::SERVICE_UNAVAILABLE))
        );
        assert_eq!(
            p.response_reason(false, false, StatusCode::SERVICE_UNAVAILABLE, None),
            None
        );
        assert_eq!(
            p.response_reason(true, true, StatusCode::OK, Some(14)),
            Some(RetryReason::Grpc(14))
        );
        assert_eq!(p.response_reason(true, true, StatusCode::OK, Some(5)), None);
        // a gRPC POST: codes yes, statuses no
        assert_eq!(
            p.response_reason(false, true, StatusCode::OK, Some(14)),
            Some(RetryReason::Grpc(14))
        );
        assert_eq!(
            p.response_reason(false, true, StatusCode::SERVICE_UNAVAILABLE, None),
            None
        );
        assert!(p.may_retry(&Method::POST, true));
        assert_eq!(
            p.response_reason(true, true, StatusCode::INTERNAL_SERVER_ERROR, None),
            None
        );
    }

    #[test]
    fn connect_errors_for_any_method() {
        let p = RetryPolicy::default();
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(p.error_reason(false, &e), Some(RetryReason::ConnectError));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(p.error_reason(true, &reset), None);
    }
}
