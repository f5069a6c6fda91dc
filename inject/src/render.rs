//! Rendering an injected object back to YAML in the order its author wrote it.
//!
//! Injection works on `serde_json::Value` (the webhook's native form), whose
//! maps may be sorted; [`ordered_like`] rebuilds a YAML value whose mappings
//! list keys in the original document's order, with new keys after them in
//! sorted order (`name` first). Sorting new keys makes the output independent of whether
//! serde_json's `preserve_order` feature is on somewhere in the build.

use serde_json::Value;
use serde_norway::{Mapping, Value as Yaml};

/// `new` as YAML, key order taken from `old` where `old` has the same path.
/// List items are matched by their `name` field when they have one (containers,
/// env, volumes), else by position.
pub(crate) fn ordered_like(new: &Value, old: Option<&Yaml>) -> Yaml {
    match new {
        Value::Object(map) => {
            let old_map = old.and_then(Yaml::as_mapping);
            let mut out = Mapping::with_capacity(map.len());
            if let Some(old_map) = old_map {
                for key in old_map.keys() {
                    if let Some(k) = key.as_str()
                        && let Some(v) = map.get(k)
                    {
                        out.insert(key.clone(), ordered_like(v, old_map.get(key)));
                    }
                }
            }
            let mut rest: Vec<_> = map
                .iter()
                .filter(|(k, _)| !out.contains_key(k.as_str()))
                .collect();
            // `name` first, as people write containers, env and ports.
            rest.sort_by(|a, b| (a.0 != "name", a.0).cmp(&(b.0 != "name", b.0)));
            for (k, v) in rest {
                out.insert(Yaml::String(k.clone()), ordered_like(v, None));
            }
            Yaml::Mapping(out)
        }
        Value::Array(items) => {
            let old_items = old.and_then(Yaml::as_sequence);
            Yaml::Sequence(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let twin = old_items.and_then(|olds| {
                            match item.get("name").and_then(Value::as_str) {
                                Some(name) => olds
                                    .iter()
                                    .find(|o| o.get("name").and_then(Yaml::as_str) == Some(name)),
                                None => olds.get(i),
                            }
                        });
                        ordered_like(item, twin)
                    })
                    .collect(),
            )
        }
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Bool(*b),
        Value::String(s) => Yaml::String(s.clone()),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Yaml::Number(u.into())
            } else if let Some(i) = n.as_i64() {
                Yaml::Number(i.into())
            } else {
                Yaml::Number(n.as_f64().unwrap_or(f64::NAN).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_author_order_and_sorts_new_keys() {
        let old: Yaml =
            serde_norway::from_str("spec: {z: 1, a: [{name: x, q: 1, b: 2}]}\nkind: Pod\n")
                .expect("yaml");
        let new = json!({"kind": "Pod", "spec": {"a": [{"name": "x", "b": 2, "q": 1, "new": true}], "z": 1, "m": 0, "c": 0}});
        let text = serde_norway::to_string(&ordered_like(&new, Some(&old))).expect("render");
        assert_eq!(
            text,
            "spec:\n  z: 1\n  a:\n  - name: x\n    q: 1\n    b: 2\n    new: true\n  c: 0\n  m: 0\nkind: Pod\n"
        );
    }
}
