//! Errors of compiling the route table, each naming the field it is about.

use std::fmt;

/// One problem in the `routes:` or `versioning:` configuration.
///
/// `field` is the path of the offending field in the config file, such as
/// `routes[3].match.path_template`, so the operator can find it without
/// guessing which route "the template" meant.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {kind}")]
pub struct RouteError {
    /// Field path, e.g. `routes[3].split[1].upstream`.
    pub field: String,
    /// What is wrong with it.
    #[source]
    pub kind: RouteErrorKind,
}

/// What is wrong with a route field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteErrorKind {
    /// A required value is empty.
    #[error("must not be empty")]
    Empty,
    /// Two routes share a name.
    #[error("duplicate route name {name:?} (first used by routes[{first}])")]
    DuplicateName {
        /// The repeated name.
        name: String,
        /// Index of the route that used it first.
        first: usize,
    },
    /// An upstream name that the `upstreams:` section does not define.
    #[error("unknown upstream {0:?}")]
    UnknownUpstream(String),
    /// Fields that may not be combined (or of which one is required).
    #[error("{0}")]
    Conflict(&'static str),
    /// A host pattern that is not `name`, `*.suffix` or `*`.
    #[error("invalid host pattern {pattern:?}: {reason}")]
    BadHost {
        /// The pattern as written.
        pattern: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A path, prefix or template that cannot be used.
    #[error("invalid path {path:?}: {reason}")]
    BadPath {
        /// The path as written.
        path: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A method that is not an HTTP token.
    #[error("invalid method {0:?}")]
    BadMethod(String, #[source] http::method::InvalidMethod),
    /// A header name that is not a valid HTTP field name.
    #[error("invalid header name {0:?}")]
    BadHeaderName(String, #[source] http::header::InvalidHeaderName),
    /// A header value that is not a valid HTTP field value.
    #[error("invalid header value {0:?}")]
    BadHeaderValue(String, #[source] http::header::InvalidHeaderValue),
    /// A date that is not RFC 3339 UTC.
    #[error("invalid date {0:?} (expected RFC 3339 UTC such as \"2027-06-30T00:00:00Z\")")]
    BadDate(String, #[source] humantime::TimestampError),
    /// A value that is out of its allowed range.
    #[error("{0}")]
    OutOfRange(&'static str),
    /// A split whose weights add up to zero or overflow.
    #[error("split weights must add up to more than 0")]
    ZeroWeights,
    /// A media type pattern without exactly one `{n}`.
    #[error("media type {0:?} must contain exactly one \"{{n}}\"")]
    BadMediaType(String),
    /// A link that cannot go into a `Link` header.
    #[error("invalid link {0:?}: must be an absolute http(s) URL without '<', '>' or spaces")]
    BadLink(String),
}

impl RouteError {
    pub(crate) fn new(field: impl Into<String>, kind: RouteErrorKind) -> Self {
        Self {
            field: field.into(),
            kind,
        }
    }
}

/// Displays a list of route errors one per line, for `gateway validate`.
pub struct RouteErrors<'a>(pub &'a [RouteError]);

impl fmt::Display for RouteErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
