//! Small edits to YAML documents: the stack reuses the files in `config/` and
//! only changes addresses (and makes relative paths absolute) before starting
//! components from them.

use serde_norway::Value;

/// Sets the value at a dotted path such as `listeners.0.address` or
/// `services.catalog.endpoints`; maps and list entries along the way must exist
/// (missing map keys are created).
pub(crate) fn set(doc: &mut Value, path: &str, value: Value) {
    let mut cur = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, key) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let next = match cur {
            Value::Sequence(seq) => match key.parse::<usize>().ok().and_then(|n| seq.get_mut(n)) {
                Some(v) => v,
                None => return,
            },
            Value::Mapping(map) => {
                let k = Value::String((*key).to_owned());
                if !map.contains_key(&k) {
                    map.insert(k.clone(), Value::Mapping(Default::default()));
                }
                match map.get_mut(&k) {
                    Some(v) => v,
                    None => return,
                }
            }
            _ => return,
        };
        if last {
            *next = value;
            return;
        }
        cur = next;
    }
}

/// Reads the string at a dotted path.
pub(crate) fn get_str<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    let mut cur = doc;
    for key in path.split('.') {
        cur = match cur {
            Value::Sequence(seq) => seq.get(key.parse::<usize>().ok()?)?,
            Value::Mapping(map) => map.get(Value::String(key.to_owned()))?,
            _ => return None,
        };
    }
    cur.as_str()
}

/// A one-element YAML list holding `addr`.
pub(crate) fn endpoints(addr: std::net::SocketAddr) -> Value {
    Value::Sequence(vec![Value::String(addr.to_string())])
}

/// `dashboard.sidecars`: `[{name, url: http://<admin>}]`.
pub(crate) fn peers<'a>(admins: impl Iterator<Item = (&'a str, std::net::SocketAddr)>) -> Value {
    Value::Sequence(
        admins
            .map(|(name, addr)| {
                let mut m = serde_norway::Mapping::new();
                m.insert("name".into(), Value::String(name.to_owned()));
                m.insert("url".into(), Value::String(format!("http://{addr}")));
                Value::Mapping(m)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_nested_values() {
        let mut doc: Value = serde_norway::from_str(
            "listeners:\n  - name: a\n    address: 1.2.3.4:1\nupstreams: {}\n",
        )
        .unwrap();
        set(
            &mut doc,
            "listeners.0.address",
            Value::String("127.0.0.1:0".into()),
        );
        set(
            &mut doc,
            "upstreams.catalog.endpoints",
            endpoints("127.0.0.1:9".parse().unwrap()),
        );
        assert_eq!(get_str(&doc, "listeners.0.address"), Some("127.0.0.1:0"));
        let text = serde_norway::to_string(&doc).unwrap();
        assert!(text.contains("127.0.0.1:9"), "{text}");
    }
}
