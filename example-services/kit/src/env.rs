//! Typed reading of environment variables for the services' `Config::from_env`.
//!
//! Reading goes through a lookup function so configs can be built from a map
//! in tests without touching the process environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// An environment variable held a value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?}: {reason}")]
pub struct EnvError {
    /// The variable.
    pub name: String,
    /// Its value.
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

/// A source of variables: the process environment or a test map.
pub struct Env<'a> {
    lookup: Box<Lookup<'a>>,
}

type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl Env<'static> {
    /// The process environment.
    pub fn process() -> Self {
        Self {
            lookup: Box::new(|name| std::env::var(name).ok()),
        }
    }
}

impl<'a> Env<'a> {
    /// Variables from a lookup function.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self {
            lookup: Box::new(lookup),
        }
    }

    /// The value, `None` when unset or empty.
    pub fn string(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// A value parsed with `FromStr`.
    pub fn parse<T>(&self, name: &str) -> Result<Option<T>, EnvError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.string(name)
            .map(|value| {
                value.trim().parse().map_err(|e: T::Err| EnvError {
                    name: name.to_owned(),
                    reason: e.to_string(),
                    value,
                })
            })
            .transpose()
    }

    /// A duration written like `250ms` or `15m`.
    pub fn duration(&self, name: &str) -> Result<Option<Duration>, EnvError> {
        self.string(name)
            .map(|value| {
                humantime::parse_duration(value.trim()).map_err(|e| EnvError {
                    name: name.to_owned(),
                    reason: e.to_string(),
                    value,
                })
            })
            .transpose()
    }

    /// A boolean (`true`/`false`/`1`/`0`).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, EnvError> {
        self.string(name)
            .map(|value| match value.trim() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(EnvError {
                    name: name.to_owned(),
                    reason: "expected true or false".to_owned(),
                    value,
                }),
            })
            .transpose()
    }

    /// The listen address: `LISTEN_ADDR`, else `0.0.0.0:$PORT`, else `0.0.0.0:<default_port>`.
    pub fn listen_addr(&self, default_port: u16) -> Result<SocketAddr, EnvError> {
        if let Some(addr) = self.parse("LISTEN_ADDR")? {
            return Ok(addr);
        }
        let port = self.parse("PORT")?.unwrap_or(default_port);
        Ok(SocketAddr::from(([0, 0, 0, 0], port)))
    }

    /// The data directory for SQLite files: `WEIR_DATA_DIR`, default `./data`.
    pub fn data_dir(&self) -> PathBuf {
        self.string("WEIR_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("./data"))
    }

    /// The sidecar's outbound proxy address: `WEIR_OUTBOUND_ADDR` (`host:port`)
    /// or `HTTP_PROXY`/`http_proxy` (`http://host:port`).
    pub fn outbound_proxy(&self) -> Result<Option<SocketAddr>, EnvError> {
        if let Some(addr) = self.parse("WEIR_OUTBOUND_ADDR")? {
            return Ok(Some(addr));
        }
        for name in ["HTTP_PROXY", "http_proxy"] {
            if let Some(value) = self.string(name) {
                let trimmed = value
                    .trim()
                    .trim_start_matches("http://")
                    .trim_end_matches('/');
                return trimmed
                    .parse()
                    .map(Some)
                    .map_err(|e: std::net::AddrParseError| EnvError {
                        name: name.to_owned(),
                        reason: format!("{e} (expected http://IP:PORT)"),
                        value,
                    });
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<'static> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::from_fn(move |k| map.get(k).cloned())
    }

    #[test]
    fn reads_typed_values_and_names_bad_ones() {
        let e = env(&[("TTL", "250ms"), ("SEED", "false"), ("PORT", "x")]);
        assert_eq!(e.duration("TTL").unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(e.boolean("SEED").unwrap(), Some(false));
        let err = e.listen_addr(8081).unwrap_err();
        assert_eq!(err.name, "PORT");
        assert_eq!(
            env(&[]).listen_addr(8081).unwrap(),
            "0.0.0.0:8081".parse().unwrap()
        );
    }

    #[test]
    fn outbound_proxy_from_http_proxy() {
        let e = env(&[("HTTP_PROXY", "http://127.0.0.1:4240/")]);
        assert_eq!(
            e.outbound_proxy().unwrap(),
            Some("127.0.0.1:4240".parse().unwrap())
        );
        assert_eq!(env(&[]).outbound_proxy().unwrap(), None);
    }
}
