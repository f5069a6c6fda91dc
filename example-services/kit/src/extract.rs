//! Extractors that turn bad input into problems naming the field.
//!
//! axum's own `Json` and `Query` rejections are plain text and do not say which
//! field was wrong; these wrappers answer with `application/problem+json`:
//! `400` for bytes that are not JSON, `413` over the body limit, `422` with
//! `field` set to the JSON path (`items[0].quantity`), query parameter or header.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// Header carrying the client's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A JSON body whose deserialization errors become `422` problems naming the field.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "Request body too large",
                )
                .with_detail(rejection.body_text())
            } else {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable-body",
                    "Request body could not be read",
                )
                .with_detail(rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON, mapping syntax errors to `400` and data errors to `422` with the field path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|error| {
        let inner = error.inner();
        if inner.is_data() {
            let path = error.path().to_string();
            let message = inner.to_string();
            Problem::invalid(field_of(&path, &message), message)
        } else {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Request body is not valid JSON",
            )
            .with_detail(inner.to_string())
        }
    })?;
    de.end().map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Request body is not valid JSON",
        )
        .with_detail(e.to_string())
    })?;
    Ok(value)
}

/// The field a serde data error is about: the path, extended by the name serde
/// quotes for missing and unknown fields (their path is the parent object).
fn field_of(path: &str, message: &str) -> String {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match (named, path) {
        // Unknown fields are already the last path segment.
        (Some(name), path) if path == name || path.ends_with(&format!(".{name}")) => {
            path.to_owned()
        }
        (Some(name), "." | "") => name.to_owned(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, "") => ".".to_owned(),
        (None, path) => path.to_owned(),
    }
}

/// Query parameters as a map, with typed accessors that answer `422` naming the parameter.
#[derive(Debug, Clone, Default)]
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "malformed-query",
                    "Query string could not be parsed",
                )
                .with_detail(rejection.body_text())
            })?;
        Ok(QueryMap(map))
    }
}

impl QueryMap {
    /// A string parameter, `None` when absent or empty.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A string parameter that must be there: `422` naming it when absent or empty.
    pub fn required(&self, name: &str) -> Result<&str, Problem> {
        self.string(name).ok_or_else(|| {
            Problem::invalid(
                name.to_owned(),
                format!("the {name} query parameter is required"),
            )
        })
    }

    /// An integer parameter within `min..=max`.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, Problem> {
        let Some(raw) = self.string(name) else {
            return Ok(None);
        };
        let value: i64 = raw
            .parse()
            .map_err(|_| Problem::invalid(name, format!("`{raw}` is not an integer")))?;
        if !(min..=max).contains(&value) {
            return Err(Problem::invalid(
                name,
                format!("must be between {min} and {max}"),
            ));
        }
        Ok(Some(value))
    }

    /// A boolean parameter (`true`/`false`/`1`/`0`).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, Problem> {
        match self.string(name) {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(other) => Err(Problem::invalid(
                name,
                format!("`{other}` is not a boolean (true or false)"),
            )),
        }
    }

    /// The page size: `limit` within `1..=max`, `default` when absent.
    pub fn limit(&self, default: i64, max: i64) -> Result<i64, Problem> {
        Ok(self.int("limit", 1, max)?.unwrap_or(default))
    }
}

/// The `Idempotency-Key` header, required: `422` naming the header when absent or unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY) else {
            return Err(Problem::invalid(
                "Idempotency-Key",
                "the Idempotency-Key header is required",
            ));
        };
        let key = value
            .to_str()
            .map_err(|_| Problem::invalid("Idempotency-Key", "must be visible ASCII"))?
            .trim();
        if key.is_empty() || key.len() > 255 {
            return Err(Problem::invalid(
                "Idempotency-Key",
                "must be 1 to 255 characters",
            ));
        }
        Ok(IdempotencyKey(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        quantity: u32,
    }

    #[test]
    fn names_the_nested_field_with_a_bad_type() {
        let err = parse_json::<Body>(br#"{"name":"a","items":[{"quantity":-1}]}"#).unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(err.field.as_deref(), Some("items[0].quantity"));
    }

    #[test]
    fn names_missing_and_unknown_fields() {
        let err = parse_json::<Body>(br#"{"items":[]}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("name"));
        let err = parse_json::<Body>(br#"{"name":"a","items":[{}]}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("items[0].quantity"));
        let err = parse_json::<Body>(br#"{"name":"a","items":[],"x":1}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("x"));
    }

    #[test]
    fn syntax_errors_are_400() {
        let err = parse_json::<Body>(b"{not json").unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(err.slug(), "malformed-json");
        let err = parse_json::<Body>(br#"{"name":"a","items":[]} trailing"#).unwrap_err();
        assert_eq!(err.status, 400);
    }
}
