//! Why a request failed authentication, in a form safe to log and count.

/// An authentication or authorization failure.
///
/// `reason` is a stable slug (`token_expired`, `unknown_kid`, …) for metrics
/// and access logs; `description` is a short human text for the
/// `WWW-Authenticate` header and the problem body. Neither ever contains the
/// credential itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {description}")]
pub struct AuthError {
    pub kind: AuthErrorKind,
    pub reason: &'static str,
    pub description: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthErrorKind {
    /// 401: no credentials, or credentials that do not verify.
    Unauthenticated,
    /// 403: valid credentials without the required scope or claim.
    Forbidden,
}

impl AuthError {
    pub(crate) fn invalid(reason: &'static str, description: impl Into<String>) -> Self {
        Self {
            kind: AuthErrorKind::Unauthenticated,
            reason,
            description: description.into(),
        }
    }

    pub(crate) fn forbidden(reason: &'static str, description: impl Into<String>) -> Self {
        Self {
            kind: AuthErrorKind::Forbidden,
            reason,
            description: description.into(),
        }
    }

    pub fn status(&self) -> http::StatusCode {
        match self.kind {
            AuthErrorKind::Unauthenticated => http::StatusCode::UNAUTHORIZED,
            AuthErrorKind::Forbidden => http::StatusCode::FORBIDDEN,
        }
    }

    /// The RFC 6750 `WWW-Authenticate` challenge.
    pub fn challenge(&self, scopes: &[String]) -> String {
        let desc = sanitize(&self.description);
        match self.kind {
            AuthErrorKind::Unauthenticated => {
                format!(
                    "Bearer realm=\"weir\", error=\"invalid_token\", error_description=\"{desc}\""
                )
            }
            AuthErrorKind::Forbidden => format!(
                "Bearer realm=\"weir\", error=\"insufficient_scope\", error_description=\"{desc}\", scope=\"{}\"",
                sanitize(&scopes.join(" "))
            ),
        }
    }
}

/// RFC 6750 limits error_description to printable ASCII without `"` and `\`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if (' '..='~').contains(&c) && c != '"' && c != '\\' {
                c
            } else {
                '\''
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_is_rfc6750_and_safe() {
        let e = AuthError::invalid("token_expired", "token \"expired\"\n");
        assert_eq!(
            e.challenge(&[]),
            "Bearer realm=\"weir\", error=\"invalid_token\", error_description=\"token 'expired''\""
        );
        let f = AuthError::forbidden("insufficient_scope", "missing scope");
        assert_eq!(f.status(), http::StatusCode::FORBIDDEN);
        assert!(
            f.challenge(&["a".into(), "b".into()])
                .ends_with("scope=\"a b\"")
        );
    }
}
