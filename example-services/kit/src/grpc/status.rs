//! The problems a service answers REST calls with, as gRPC statuses.
//!
//! A gRPC call runs the same domain code as its REST twin and fails with
//! the same [`Problem`]; the status code follows the problem's HTTP status
//! (the inverse of gRPC's own HTTP mapping), the message is its detail, and
//! the problem's stable slug and field travel as metadata, so a client can
//! tell `insufficient-stock` from `reservation-expired` without parsing text.

use http::StatusCode;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::problem::Problem;

/// Metadata naming the problem's type slug (`insufficient-stock`).
pub const PROBLEM_TYPE: &str = "x-weir-problem-type";

/// Metadata naming the field a validation problem is about.
pub const PROBLEM_FIELD: &str = "x-weir-problem-field";

/// The status code for a problem's HTTP status.
pub fn code_for(status: StatusCode) -> Code {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Code::InvalidArgument,
        StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::CONFLICT => Code::FailedPrecondition,
        StatusCode::TOO_MANY_REQUESTS => Code::ResourceExhausted,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
        s if s.is_client_error() => Code::FailedPrecondition,
        _ => Code::Internal,
    }
}

/// The status a gRPC client gets for `problem`.
pub fn status_from_problem(problem: &Problem) -> Status {
    let mut metadata = MetadataMap::new();
    if let Ok(value) = MetadataValue::try_from(problem.slug()) {
        metadata.insert(PROBLEM_TYPE, value);
    }
    if let Some(field) = problem.field.as_deref()
        && let Ok(value) = MetadataValue::try_from(field)
    {
        metadata.insert(PROBLEM_FIELD, value);
    }
    let message = problem
        .detail
        .clone()
        .unwrap_or_else(|| problem.title.clone());
    Status::with_metadata(code_for(problem.status_code()), message, metadata)
}

/// The problem slug a status carries, when a Weir service sent it.
pub fn problem_type(status: &Status) -> Option<&str> {
    status.metadata().get(PROBLEM_TYPE)?.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_keep_their_kind_and_field() {
        let status = status_from_problem(&Problem::conflict(
            "insufficient-stock",
            "product p has 0 in stock, 1 requested",
        ));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "product p has 0 in stock, 1 requested");
        assert_eq!(problem_type(&status), Some("insufficient-stock"));

        let status = status_from_problem(&Problem::invalid("items[0].quantity", "too many"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.metadata().get(PROBLEM_FIELD).unwrap(),
            "items[0].quantity"
        );
        assert_eq!(
            status_from_problem(&Problem::no_such("product", "x")).code(),
            Code::NotFound
        );
        assert_eq!(
            status_from_problem(&Problem::unavailable("database-unavailable", "down")).code(),
            Code::Unavailable
        );
        assert_eq!(
            status_from_problem(&Problem::internal("boom")).code(),
            Code::Internal
        );
    }
}
