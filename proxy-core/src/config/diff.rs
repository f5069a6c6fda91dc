//! Which fields of a config section changed, by field path.
//!
//! A reload uses it to name the changes that only a restart applies. It
//! compares the serialized form, so a section that gains a field is covered
//! without touching this code.

use serde::Serialize;
use serde_json::Value;

/// The paths under `section` (`limits.idle_timeout`, `listeners[1].address`)
/// where `old` and `new` differ. Secrets serialize redacted, so a change to
/// a secret alone is reported as the whole `section`.
pub fn changed_fields<T: Serialize + PartialEq>(section: &str, old: &T, new: &T) -> Vec<String> {
    if old == new {
        return Vec::new();
    }
    let mut out = Vec::new();
    match (serde_json::to_value(old), serde_json::to_value(new)) {
        (Ok(a), Ok(b)) => changed_values(section, &a, &b, &mut out),
        _ => out.push(section.to_owned()),
    }
    if out.is_empty() {
        out.push(section.to_owned());
    }
    out
}

/// The paths under `path` where two JSON values differ, appended to `out`.
pub fn changed_values(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => changed_values(&child, x, y, out),
                    _ => out.push(child),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                changed_values(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (a, b) if a != b => out.push(path.to_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[derive(Serialize, PartialEq)]
    struct S {
        a: u32,
        list: Vec<u32>,
        key: Secret<String>,
        extra: Option<u32>,
    }

    fn s(a: u32, list: Vec<u32>, key: &str, extra: Option<u32>) -> S {
        S {
            a,
            list,
            key: Secret::new(key.into()),
            extra,
        }
    }

    #[test]
    fn names_each_changed_field() {
        let old = s(1, vec![1, 2], "k", None);
        assert!(changed_fields("x", &old, &s(1, vec![1, 2], "k", None)).is_empty());
        assert_eq!(
            changed_fields("x", &old, &s(2, vec![1, 3], "k", Some(1))),
            ["x.a", "x.extra", "x.list[1]"]
        );
        assert_eq!(
            changed_fields("x", &old, &s(1, vec![1], "k", None)),
            ["x.list"]
        );
    }

    #[test]
    fn a_secret_change_names_the_section_without_the_value() {
        let out = changed_fields(
            "x",
            &s(1, vec![], "old-secret", None),
            &s(1, vec![], "new-secret", None),
        );
        assert_eq!(out, ["x"]);
    }
}
