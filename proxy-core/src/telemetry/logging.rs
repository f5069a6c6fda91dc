//! Process-wide log output through `tracing-subscriber`.
//!
//! Logs (and the access log, emitted as `tracing` events with target
//! `weir::access`) are the one global piece: a process has one stdout. The
//! filter comes from `RUST_LOG` (default `info`).

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line: what log pipelines ingest.
    #[default]
    Json,
    /// Human-readable, for a terminal.
    Text,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "text" | "pretty" => Ok(Self::Text),
            other => Err(format!("unknown log format {other:?}; use json or text")),
        }
    }
}

/// Installs the global subscriber. Returns `false` (and changes nothing) when
/// one is already installed, so tests and the demo, which start several
/// components in one process, can all call it.
pub fn init_logging(format: LogFormat) -> bool {
    init_logging_with_filter(format, std::env::var("RUST_LOG").ok().as_deref())
}

/// [`init_logging`] with an explicit filter directive (`None`: `info`).
pub fn init_logging_with_filter(format: LogFormat, directive: Option<&str>) -> bool {
    let filter = directive
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
            .is_ok(),
        LogFormat::Text => builder.try_init().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn second_init_is_refused_not_a_panic() {
        let first = init_logging_with_filter(LogFormat::Text, Some("warn"));
        let second = init_logging_with_filter(LogFormat::Json, Some("not a [valid filter"));
        // Another test in this binary may have installed one first; either way
        // the second call must report false instead of panicking.
        let _ = first;
        assert!(!second);
    }
}
