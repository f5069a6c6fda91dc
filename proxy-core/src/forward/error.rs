//! Why forwarding to an upstream failed, and what the client should see.

use std::error::Error as _;

use http::StatusCode;
use http_body_util::LengthLimitError;

use super::{ClientBodyError, ClientError};
use crate::problem::Problem;

/// A failure forwarding a request. Each variant maps to one status, as
/// linkerd's `ClientRescue` does: refusals are 502, time-outs 504; failures
/// that come from the client's side (its body too large or malformed) are
/// 4xx, whatever stage of the upstream exchange they surfaced in.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("cannot connect to upstream {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: ClientError,
    },
    #[error("upstream {endpoint} failed")]
    Upstream {
        endpoint: String,
        #[source]
        source: ClientError,
    },
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
    /// The client's body broke while it was being sent (see
    /// [`ClientBody`](super::ClientBody)).
    #[error("the request body could not be read")]
    ClientBody(#[source] ClientBodyError),
    #[error("upstream did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("no healthy endpoint for upstream {0}")]
    NoEndpoint(String),
    #[error("invalid upstream request: {0}")]
    InvalidRequest(String),
}

impl ForwardError {
    /// Classifies an upstream client error, finding the client's own failures
    /// in its causes: a body-limit breach (413), or a malformed or stalled body
    /// (400) when the body was wrapped in [`ClientBody`](super::ClientBody) or
    /// came from the serving function.
    pub fn from_client(endpoint: String, err: ClientError, limit: u64) -> Self {
        if err.is_connect() {
            return ForwardError::Connect {
                endpoint,
                source: err,
            };
        }
        // A breached limit may sit inside a `ClientBodyError`: look for it
        // through the whole chain first.
        let causes = || std::iter::successors(err.source(), |c| (*c).source());
        if causes().any(|c| c.is::<LengthLimitError>()) {
            return ForwardError::BodyTooLarge { limit };
        }
        if let Some(timeout) =
            causes().find_map(|c| c.downcast_ref::<crate::body::BodyReadTimeout>())
        {
            return ForwardError::ClientBody(ClientBodyError(Box::new(*timeout)));
        }
        if let Some(body) = causes().find_map(|c| c.downcast_ref::<ClientBodyError>()) {
            // Described, not kept: `err` also names the upstream connection.
            return ForwardError::ClientBody(ClientBodyError(body.0.to_string().into()));
        }
        ForwardError::Upstream {
            endpoint,
            source: err,
        }
    }

    pub fn is_connect(&self) -> bool {
        matches!(self, ForwardError::Connect { .. })
    }

    /// Whether the client caused the failure (its body), so it says nothing
    /// about the upstream's health.
    pub fn is_client_fault(&self) -> bool {
        matches!(
            self,
            ForwardError::BodyTooLarge { .. } | ForwardError::ClientBody(_)
        )
    }

    /// Stable error type for logs, metrics and spans.
    pub fn kind(&self) -> &'static str {
        match self {
            ForwardError::Connect { .. } => "upstream-connect-failed",
            ForwardError::Upstream { .. } => "upstream-error",
            ForwardError::BodyTooLarge { .. } => "payload-too-large",
            ForwardError::ClientBody(_) => "invalid-request-body",
            ForwardError::Timeout(_) => "upstream-timeout",
            ForwardError::NoEndpoint(_) => "no-healthy-upstream",
            ForwardError::InvalidRequest(_) => "bad-request",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ForwardError::Connect { .. } | ForwardError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ForwardError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ForwardError::ClientBody(_) => StatusCode::BAD_REQUEST,
            ForwardError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ForwardError::NoEndpoint(_) => StatusCode::SERVICE_UNAVAILABLE,
            ForwardError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The problem document the client receives.
    pub fn to_problem(&self) -> Problem {
        let title = match self {
            ForwardError::Connect { .. } => "Upstream connection failed",
            ForwardError::Upstream { .. } => "Upstream error",
            ForwardError::BodyTooLarge { .. } => "Request body too large",
            ForwardError::ClientBody(_) => "Malformed request body",
            ForwardError::Timeout(_) => "Upstream timed out",
            ForwardError::NoEndpoint(_) => "No healthy upstream",
            ForwardError::InvalidRequest(_) => "Bad request",
        };
        // Internal addresses stay in the logs; the client learns what kind of
        // failure it was.
        let mut detail = match self {
            ForwardError::Connect { .. } => "cannot connect to the upstream".to_owned(),
            ForwardError::Upstream { .. } => "the upstream connection failed".to_owned(),
            other => other.to_string(),
        };
        if let Some(src) = self.source() {
            detail.push_str(": ");
            detail.push_str(&src.to_string());
        }
        Problem::new(self.status(), self.kind(), title).detail(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_body_failures_are_client_errors() {
        let err = ForwardError::ClientBody(ClientBodyError("invalid chunk size line".into()));
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.kind(), "invalid-request-body");
        assert!(err.is_client_fault());
        let problem = err.to_problem();
        assert_eq!(problem.status(), StatusCode::BAD_REQUEST);
        let detail = problem.to_json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("invalid chunk size line"), "{detail}");
        assert!(!ForwardError::Timeout(std::time::Duration::from_secs(1)).is_client_fault());
    }
}
