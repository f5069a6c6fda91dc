//! YAML loading with field paths and line numbers in errors.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::{ConfigError, ConfigErrors};

/// Parses YAML into `T`, naming the field path and line of the first problem
/// (serde stops at the first structural error; semantic validation afterwards
/// reports the rest together).
pub fn parse_yaml<T: DeserializeOwned>(text: &str) -> Result<T, ConfigErrors> {
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let line = inner.location().map(|l| l.line());
        let mut message = inner.to_string();
        // serde_norway appends " at line N column M"; we report the line separately.
        if let Some(pos) = message.find(" at line ") {
            message.truncate(pos);
        }
        let path = if path == "." { String::new() } else { path };
        // serde_norway may repeat the path in front of the message.
        if let Some((head, rest)) = message.split_once(": ")
            && !head.is_empty()
            && path.starts_with(head)
        {
            message = rest.to_owned();
        }
        ConfigErrors::from(ConfigError {
            path,
            line,
            message,
        })
    })
}

/// Reads and parses a YAML file; an unreadable file is a config error too.
pub fn read_yaml_file<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::from(ConfigError::new(
            "",
            format!("cannot read {}: {e}", path.display()),
        ))
    })?;
    parse_yaml(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        timeout: HumanDuration,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        items: Vec<Inner>,
    }

    #[test]
    fn unknown_field_names_path_and_line() {
        let err =
            parse_yaml::<Outer>("items:\n  - timeout: 1s\n  - timeout: 2s\n    colour: red\n")
                .unwrap_err();
        let e = &err.0[0];
        assert_eq!(e.path, "items[1].colour");
        assert_eq!(e.line, Some(4));
        assert!(
            e.message.contains("unknown field `colour`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_duration_names_path() {
        let err = parse_yaml::<Outer>("items:\n  - timeout: soon\n").unwrap_err();
        assert_eq!(err.0[0].path, "items[0].timeout");
        assert!(err.0[0].message.contains("invalid duration"));
    }
}
