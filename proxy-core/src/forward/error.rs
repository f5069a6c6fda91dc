//! Why forwarding to an upstream failed, and what the client should see.

use std::error::Error as _;

use http::StatusCode;
use http_body_util::LengthLimitError;

use super::ClientError;
use crate::problem::Problem;

/// A failure on the upstream side of a hop. Each variant maps to one status,
/// as linkerd's `ClientRescue` does: refusals are 502, time-outs 504.
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
    #[error("upstream did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("no healthy endpoint for upstream {0}")]
    NoEndpoint(String),
    #[error("invalid upstream request: {0}")]
    InvalidRequest(String),
}

impl ForwardError {
    /// Classifies a hyper client error, finding body-limit breaches in its causes.
    pub fn from_client(endpoint: String, err: ClientError, limit: u64) -> Self {
        if err.is_connect() {
            return ForwardError::Connect {
                endpoint,
                source: err,
            };
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = err.source();
        while let Some(c) = cause {
            if c.is::<LengthLimitError>() {
                return ForwardError::BodyTooLarge { limit };
            }
            cause = c.source();
        }
        ForwardError::Upstream {
            endpoint,
            source: err,
        }
    }

    pub fn is_connect(&self) -> bool {
        matches!(self, ForwardError::Connect { .. })
    }

    /// Stable error type for logs, metrics and spans.
    pub fn kind(&self) -> &'static str {
        match self {
            ForwardError::Connect { .. } => "upstream-connect-failed",
            ForwardError::Upstream { .. } => "upstream-error",
            ForwardError::BodyTooLarge { .. } => "payload-too-large",
            ForwardError::Timeout(_) => "upstream-timeout",
            ForwardError::NoEndpoint(_) => "no-healthy-upstream",
            ForwardError::InvalidRequest(_) => "bad-request",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ForwardError::Connect { .. } | ForwardError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ForwardError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
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
