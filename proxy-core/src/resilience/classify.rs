//! What counts as a failure, shared by the retry layer and the breaker.
//!
//! Errors are classified by walking their `source()` chain, so a connect error
//! wrapped by any number of layers is still recognised: the upstream client
//! (and hyper-util's) marks its connect failures (`is_connect`), and a refused or unreachable socket
//! shows up as an `io::Error` of the matching kind.

use std::error::Error as StdError;
use std::io;

use http::{HeaderMap, StatusCode};

use super::breaker::CircuitOpen;
use super::timeout::TimeoutError;

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The connection could not be established: the request was never sent, so
    /// retrying it is safe for any method.
    Connect,
    /// A timeout of this module fired.
    Timeout,
    /// Every endpoint is ejected.
    CircuitOpen,
    /// Anything else (reset mid-request, protocol error, ...): the request may
    /// have reached the server.
    Other,
}

/// Classifies an error by its source chain.
pub fn classify_error(err: &(dyn StdError + 'static)) -> ErrorClass {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<TimeoutError>() {
            return ErrorClass::Timeout;
        }
        if e.is::<CircuitOpen>() {
            return ErrorClass::CircuitOpen;
        }
        if let Some(c) = e.downcast_ref::<crate::forward::ClientError>()
            && c.is_connect()
        {
            return ErrorClass::Connect;
        }
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>()
            && h.is_connect()
        {
            return ErrorClass::Connect;
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable
                    | io::ErrorKind::AddrNotAvailable
            )
        {
            return ErrorClass::Connect;
        }
        cur = e.source();
    }
    ErrorClass::Other
}

/// The status a proxy answers with when a resilience stack fails with `err`:
/// 504 for timeouts, 503 for an open circuit, 502 for everything else.
pub fn error_status(err: &(dyn StdError + 'static)) -> StatusCode {
    match classify_error(err) {
        ErrorClass::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorClass::CircuitOpen => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::Connect | ErrorClass::Other => StatusCode::BAD_GATEWAY,
    }
}

/// gRPC status codes the layers care about.
pub mod grpc {
    /// `DEADLINE_EXCEEDED`
    pub const DEADLINE_EXCEEDED: u32 = 4;
    /// `RESOURCE_EXHAUSTED`
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    /// `INTERNAL`
    pub const INTERNAL: u32 = 13;
    /// `UNAVAILABLE`
    pub const UNAVAILABLE: u32 = 14;
}

/// True when the message is gRPC (`content-type: application/grpc…`); see
/// [`crate::grpc`].
pub fn is_grpc(headers: &HeaderMap) -> bool {
    crate::grpc::is_grpc(headers)
}

/// The `grpc-status` in a header map (response headers of a trailers-only
/// response, or trailers), if present and numeric.
pub fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    crate::grpc::status_number(headers)
}

/// Whether a gRPC status counts against an endpoint's health
/// ([`Code::is_endpoint_failure`](crate::grpc::Code::is_endpoint_failure)).
pub fn grpc_is_endpoint_failure(code: u32) -> bool {
    crate::grpc::Code::from_u32(code).is_endpoint_failure()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped")]
    struct Wrap(#[source] Box<dyn StdError + Send + Sync>);

    #[test]
    fn connect_refused_is_found_through_wrappers() {
        let io = io::Error::from(io::ErrorKind::ConnectionRefused);
        let e = Wrap(Box::new(Wrap(Box::new(io))));
        assert_eq!(classify_error(&e), ErrorClass::Connect);
        assert_eq!(error_status(&e), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn timeout_and_open_map_to_their_status() {
        let t = TimeoutError::new(super::super::TimeoutKind::PerTry, Duration::from_secs(1));
        assert_eq!(error_status(&t), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            error_status(&CircuitOpen::new()),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(classify_error(&reset), ErrorClass::Other);
    }

    #[test]
    fn grpc_headers() {
        let mut h = HeaderMap::new();
        assert!(!is_grpc(&h));
        h.insert("content-type", "application/grpc+proto".parse().unwrap());
        h.insert("grpc-status", "14".parse().unwrap());
        assert!(is_grpc(&h));
        assert_eq!(grpc_status(&h), Some(14));
        assert!(grpc_is_endpoint_failure(14));
        assert!(!grpc_is_endpoint_failure(5));
    }
}
