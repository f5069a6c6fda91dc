//! The gRPC status codes, their canonical names, and which HTTP status of a
//! problem the proxies generate maps to which code.
//!
//! A gRPC client switches on `grpc-status`, not on the HTTP status (a gRPC
//! response is HTTP 200 whether the call failed or not), so every refusal
//! Weir generates for a gRPC client needs a code. The mapping from HTTP
//! follows the table in gRPC's `http-grpc-status-mapping.md` where it has an
//! entry, and picks the code whose meaning matches for the statuses it leaves
//! out (413 and 429 are `RESOURCE_EXHAUSTED`, 403 is `PERMISSION_DENIED`, 504
//! is `DEADLINE_EXCEEDED`).

use std::fmt;

use http::StatusCode;

/// A gRPC status code (`grpc-status`), `0..=16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

const ALL: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

impl Code {
    /// The code for a number; numbers outside `0..=16` are `UNKNOWN`, as the
    /// gRPC spec asks of clients that receive one.
    pub fn from_u32(n: u32) -> Code {
        ALL.get(n as usize).copied().unwrap_or(Code::Unknown)
    }

    /// Every code, in numeric order.
    pub fn all() -> &'static [Code] {
        &ALL
    }

    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The canonical name (`UNAVAILABLE`), as gRPC's docs, OpenTelemetry and
    /// the metrics label spell it.
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The code named `name`, case-insensitively (`unavailable`,
    /// `DEADLINE_EXCEEDED`).
    pub fn from_name(name: &str) -> Option<Code> {
        ALL.iter()
            .copied()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The `grpc-status` header value.
    pub fn header_value(self) -> http::HeaderValue {
        http::HeaderValue::from(self.as_u32())
    }

    /// The code a gRPC client is answered with when the proxy itself refuses
    /// or fails a call it would have answered over HTTP with `status`.
    pub fn from_http_status(status: StatusCode) -> Code {
        match status.as_u16() {
            200..=299 => Code::Ok,
            // gRPC's mapping: 400 → INTERNAL is for a response a client got
            // from a server; a request the proxy finds malformed is the
            // caller's fault, which INVALID_ARGUMENT says.
            400 | 411 | 414 | 431 => Code::InvalidArgument,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 | 405 | 410 => Code::Unimplemented,
            408 | 504 => Code::DeadlineExceeded,
            409 => Code::Aborted,
            412 => Code::FailedPrecondition,
            413 | 429 => Code::ResourceExhausted,
            415 | 501 => Code::Unimplemented,
            499 => Code::Cancelled,
            502..=503 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }

    /// Whether a response with this code counts against the endpoint that
    /// answered it: the server could not serve (`UNAVAILABLE`), broke
    /// (`INTERNAL`) or ran out of time (`DEADLINE_EXCEEDED`). Application
    /// outcomes such as `NOT_FOUND` or `INVALID_ARGUMENT` say nothing about
    /// the endpoint's health.
    pub fn is_endpoint_failure(self) -> bool {
        matches!(
            self,
            Code::Unavailable | Code::Internal | Code::DeadlineExceeded
        )
    }

    /// Whether a server span ends in error with this code: the codes the
    /// OpenTelemetry gRPC conventions count as the server's doing (the
    /// others are the caller's).
    pub fn is_server_error(self) -> bool {
        matches!(
            self,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        )
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_round_trip() {
        for (n, c) in Code::all().iter().enumerate() {
            assert_eq!(c.as_u32(), n as u32);
            assert_eq!(Code::from_u32(n as u32), *c);
            assert_eq!(Code::from_name(c.name()), Some(*c));
        }
        assert_eq!(Code::from_u32(17), Code::Unknown);
        assert_eq!(Code::from_name("unavailable"), Some(Code::Unavailable));
        assert_eq!(Code::from_name("nope"), None);
    }

    #[test]
    fn refusals_map_to_the_codes_clients_expect() {
        let map = |s: u16| Code::from_http_status(StatusCode::from_u16(s).unwrap());
        assert_eq!(map(401), Code::Unauthenticated);
        assert_eq!(map(403), Code::PermissionDenied);
        assert_eq!(map(429), Code::ResourceExhausted);
        assert_eq!(map(413), Code::ResourceExhausted);
        assert_eq!(map(502), Code::Unavailable);
        assert_eq!(map(503), Code::Unavailable);
        assert_eq!(map(504), Code::DeadlineExceeded);
        assert_eq!(map(404), Code::Unimplemented);
        assert_eq!(map(400), Code::InvalidArgument);
        assert_eq!(map(500), Code::Unknown);
    }

    #[test]
    fn endpoint_failures() {
        assert!(Code::Unavailable.is_endpoint_failure());
        assert!(Code::Internal.is_endpoint_failure());
        assert!(Code::DeadlineExceeded.is_endpoint_failure());
        assert!(!Code::NotFound.is_endpoint_failure());
        assert!(!Code::Ok.is_endpoint_failure());
    }
}
