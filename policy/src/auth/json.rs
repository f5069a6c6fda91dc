//! Strict parsing of a JOSE header or JWT claims set: a JSON object whose
//! member names are unique.
//!
//! RFC 7515 §4 and RFC 7519 §4 let a recipient either reject duplicate names
//! or take the lexically last; two parsers taking different ones is how
//! "which `alg`/`sub` is it?" confusion starts, so Weir rejects them.

use std::collections::HashSet;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Why a segment is not an acceptable JSON object.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ObjectError {
    /// Not JSON, or JSON but not an object (also: invalid UTF-8).
    NotAnObject,
    /// A member name appears twice (at the top level).
    Duplicate(String),
}

/// Parses `bytes` as one JSON object with unique top-level member names.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ObjectError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut duplicate = None;
    let map = de
        .deserialize_map(UniqueVisitor {
            duplicate: &mut duplicate,
        })
        .map_err(|_| ObjectError::NotAnObject);
    if let Some(name) = duplicate {
        return Err(ObjectError::Duplicate(name));
    }
    let map = map?;
    de.end().map_err(|_| ObjectError::NotAnObject)?;
    Ok(map)
}

struct UniqueVisitor<'a> {
    duplicate: &'a mut Option<String>,
}

impl<'de> Visitor<'de> for UniqueVisitor<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        let mut seen = HashSet::new();
        while let Some((k, v)) = access.next_entry::<String, Value>()? {
            if !seen.insert(k.clone()) {
                *self.duplicate = Some(k);
                return Err(serde::de::Error::custom("duplicate member name"));
            }
            map.insert(k, v);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_only() {
        assert!(parse_object(br#"{"a":1,"b":{"a":2}}"#).is_ok());
        assert_eq!(
            parse_object(br#"{"alg":"RS256","alg":"none"}"#),
            Err(ObjectError::Duplicate("alg".into()))
        );
        assert_eq!(parse_object(b"[1]"), Err(ObjectError::NotAnObject));
        assert_eq!(parse_object(b"{} x"), Err(ObjectError::NotAnObject));
        assert_eq!(
            parse_object(b"{\"a\":\"\xff\"}"),
            Err(ObjectError::NotAnObject)
        );
        // Escapes decode before comparing: "\u0061" is "a".
        assert_eq!(
            parse_object(br#"{"a":1,"\u0061":2}"#),
            Err(ObjectError::Duplicate("a".into()))
        );
    }
}
