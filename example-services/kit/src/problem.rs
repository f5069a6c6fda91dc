//! RFC 9457 problem details, the one error shape every service answers with.
//!
//! A [`Problem`] renders itself as `application/problem+json` and also rides in
//! the response extensions, so the request-context middleware
//! ([`crate::server`]) can add the request id without every handler having to
//! thread it through.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

/// Base of every problem `type` URI; the slug names the problem and never changes.
pub const TYPE_BASE: &str = "https://weir.dev/problems/";

/// The media type of problem responses.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem: status, stable type, human title and detail, plus
/// `field` for validation errors and free-form extension members.
///
/// Boxed so `Result<T, Problem>` stays one pointer wide on the happy path.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Problem(Box<ProblemDetails>);

/// The members of a [`Problem`], as serialized.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDetails {
    /// Stable URI naming the kind of problem, `https://weir.dev/problems/<slug>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem kind.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For validation problems: the offending field (JSON path, query parameter or header name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request id (`x-request-id`) of the request that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Extension members specific to the problem kind.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extensions: Map<String, Value>,
}

impl Problem {
    /// A problem with the given status, type slug and title.
    pub fn new(status: StatusCode, slug: &str, title: impl Into<String>) -> Self {
        Self(Box::new(ProblemDetails {
            type_uri: format!("{TYPE_BASE}{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            field: None,
            request_id: None,
            extensions: Map::new(),
        }))
    }

    /// Adds the occurrence-specific explanation.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Names the field the problem is about.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// `422`: the request was well-formed but `field` holds a bad value.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "Request validation failed",
        )
        .with_field(field)
        .with_detail(detail)
    }

    /// `404`: the named resource does not exist.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Resource not found").with_detail(what)
    }

    /// `404` for the `kind` (`"order"`) with `id`: "order 42 does not exist",
    /// the one wording every service uses.
    pub fn no_such(kind: &str, id: &str) -> Self {
        Self::not_found(format!("{kind} {id} does not exist"))
    }

    /// `409`: the request conflicts with the resource's current state.
    pub fn conflict(slug: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, slug, "Conflict with current state").with_detail(detail)
    }

    /// `403`: the caller may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").with_detail(detail)
    }

    /// `500`/`503` for faults on our side; the cause is logged, not sent.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
        .with_detail(detail)
    }

    /// `503`: a dependency (database, downstream service) is unavailable.
    pub fn unavailable(slug: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, slug, "Service unavailable").with_detail(detail)
    }

    /// The HTTP status as a [`StatusCode`].
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The slug part of the type URI.
    pub fn slug(&self) -> &str {
        self.type_uri
            .strip_prefix(TYPE_BASE)
            .unwrap_or(&self.type_uri)
    }

    /// Renders the problem as a complete response (without the extension copy).
    pub(crate) fn render(&self) -> Response {
        let body = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status_code(), body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

impl std::ops::Deref for Problem {
    type Target = ProblemDetails;

    fn deref(&self) -> &ProblemDetails {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemDetails {
        &mut self.0
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = self.render();
        response.extensions_mut().insert(self);
        response
    }
}

impl From<sqlx::Error> for Problem {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::warn!(%error, "database unavailable");
                Problem::unavailable("database-unavailable", "the database is not reachable")
            }
            other => {
                tracing::error!(error = %other, "database error");
                Problem::internal("a database operation failed")
            }
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.slug())?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}
