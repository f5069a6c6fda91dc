//! Secrets in configuration: redacted by type, not by field name.
//!
//! A value the operator must keep private (an API-key hash, an HMAC secret, a
//! collector's API-key header, a Redis password) is held in a [`Secret`] or a
//! [`SecretUrl`]. Everything that turns config into text (the admin `/config`
//! and `/state` documents through `Serialize`, logs and panics through
//! `Debug`, error messages through `Display`) sees only a redaction marker,
//! so a new field or a new endpoint cannot leak it by forgetting a list of
//! names. The plain value is reached only through an explicit
//! [`Secret::expose`], which is easy to find in review.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer};
use serde::{Serialize, Serializer};

/// What a secret looks like wherever it is shown.
pub const REDACTED: &str = "<redacted>";

/// A configuration value that is read from the file like its plain type but
/// never shown: `Serialize` and `Debug` write [`REDACTED`], there is no
/// `Display`, and a value the file gets wrong is reported without echoing it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The plain value, for the one place that needs it (verifying a token,
    /// opening a connection). Never format or serialize what this returns.
    pub const fn expose(&self) -> &T {
        &self.0
    }

    /// The plain value, consuming the wrapper.
    pub fn into_exposed(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // serde's messages quote the offending value ("invalid type: integer
        // `12345`, expected a string"); the field path still names the place.
        T::deserialize(d).map(Secret).map_err(|_| {
            de::Error::custom(format!(
                "invalid value (not shown: this field holds a secret); expected {}",
                std::any::type_name::<T>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("?")
            ))
        })
    }
}

/// A URL that may carry credentials (`redis://:password@host:6379/0`,
/// `https://user:token@collector`). It is shown with its user information and
/// query replaced by [`REDACTED`], so `/config`, logs and errors still name
/// the host it points at.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its credentials, for the client that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the URL carries user information or a query, i.e. whether its
    /// display differs from the plain URL.
    pub fn has_credentials(&self) -> bool {
        let (userinfo, query) = split_url(&self.0);
        userinfo.is_some() || query.is_some()
    }
}

/// `(userinfo, query)` ranges of a URL, found without a full parser: the
/// authority is what follows `scheme://` up to the first `/`, `?` or `#`, and
/// the user information is what precedes its last `@`.
fn split_url(url: &str) -> (Option<(usize, usize)>, Option<usize>) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let auth_end = rest.find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    let userinfo = url[start..auth_end]
        .rfind('@')
        .map(|at| (start, start + at + 1));
    let query = url[start..].find('?').map(|i| start + i);
    (userinfo, query)
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.0;
        let (userinfo, query) = split_url(url);
        let end = query.unwrap_or(url.len());
        match userinfo {
            Some((from, to)) => write!(f, "{}{REDACTED}@{}", &url[..from], &url[to..end])?,
            None => f.write_str(&url[..end])?,
        }
        if query.is_some() {
            write!(f, "?{REDACTED}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Secret::<String>::deserialize(d).map(|s| SecretUrl(s.into_exposed()))
    }
}

impl From<&str> for SecretUrl {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, serde::Serialize, Debug)]
    struct Holder {
        token: Secret<String>,
        url: SecretUrl,
    }

    #[test]
    fn serialize_and_debug_redact_and_expose_gives_the_value() {
        let h: Holder = serde_json::from_str(
            r#"{"token": "hunter2-token", "url": "redis://user:hunter2-pass@db:6379/0"}"#,
        )
        .unwrap();
        assert_eq!(h.token.expose(), "hunter2-token");
        assert_eq!(h.url.expose(), "redis://user:hunter2-pass@db:6379/0");
        let shown = format!("{} {h:?}", serde_json::to_string(&h).unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis://<redacted>@db:6379/0"), "{shown}");
    }

    #[test]
    fn urls_keep_host_and_path_and_lose_userinfo_and_query() {
        let show = |u: &str| SecretUrl::new(u).to_string();
        assert_eq!(show("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(show("redis://:pw@h:1/2"), "redis://<redacted>@h:1/2");
        assert_eq!(
            show("redis+unix:///run/r.sock?db=0&pass=pw"),
            "redis+unix:///run/r.sock?<redacted>"
        );
        assert_eq!(
            show("https://u:p@w@c.example/v1?k=v"),
            "https://<redacted>@c.example/v1?<redacted>"
        );
        assert_eq!(show("http://h/p@q"), "http://h/p@q");
        assert!(!SecretUrl::new("http://h:1").has_credentials());
        assert!(SecretUrl::new("http://a@h:1").has_credentials());
    }

    #[test]
    fn a_wrong_value_is_reported_without_echoing_it() {
        let err = crate::config::parse_yaml::<Holder>("token: [9876543210]\nurl: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("token"), "{err}");
        assert!(!err.contains("9876543210"), "{err}");
    }
}
