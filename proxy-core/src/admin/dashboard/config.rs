//! `dashboard:` what the admin listener's dashboard reads besides the proxy
//! itself.

use serde::{Deserialize, Serialize};

use super::peers::{self, Peer};
use crate::config::{ConfigErrors, HumanDuration};

/// Most peers one dashboard reads.
pub const MAX_PEERS: usize = 64;

/// `dashboard:` in the gateway's file.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// Sidecars whose admin dashboards the mesh view reads, e.g.
    /// `{ name: order, url: "http://127.0.0.1:4291" }`. Read only while a
    /// dashboard page is open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<PeerConfig>,
    /// Jaeger's UI (`http://localhost:16686`): trace ids on the page link to
    /// `<jaeger_url>/trace/<id>`. Omitted: trace ids are shown without links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jaeger_url: Option<String>,
    /// Where the metric names on the page link: the rendered
    /// `docs/operations.md#metrics` of your docs site. Omitted: they link to
    /// the admin listener's own `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_docs_url: Option<String>,
    /// Dashboard pages that may stream at once (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_streams: Option<usize>,
    /// Time between updates of an open page (default `1s`, at least `250ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<HumanDuration>,
}

/// `dashboard.sidecars[]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub name: String,
    /// The sidecar's admin listener, `http://host:port`.
    pub url: String,
}

impl DashboardConfig {
    /// Checks URLs and bounds; `base` is the section's path (`dashboard`).
    pub fn validate(&self, base: &str) -> ConfigErrors {
        let mut errors = ConfigErrors::new();
        if self.sidecars.len() > MAX_PEERS {
            errors.push(format!("{base}.sidecars"), format!("at most {MAX_PEERS}"));
        }
        for (i, p) in self.sidecars.iter().enumerate() {
            if p.name.trim().is_empty() {
                errors.push(format!("{base}.sidecars[{i}].name"), "must not be empty");
            }
            if let Err(e) = peers::validate_url(&p.url) {
                errors.push(format!("{base}.sidecars[{i}].url"), e);
            }
        }
        for (field, url) in [
            ("jaeger_url", &self.jaeger_url),
            ("metrics_docs_url", &self.metrics_docs_url),
        ] {
            let Some(u) = url else { continue };
            let ok = u
                .parse::<http::Uri>()
                .ok()
                .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")));
            if !ok {
                errors.push(
                    format!("{base}.{field}"),
                    "must be an http:// or https:// URL",
                );
            }
        }
        if self.max_streams == Some(0) || self.max_streams.is_some_and(|n| n > 1024) {
            errors.push(format!("{base}.max_streams"), "must be 1 to 1024");
        }
        if self
            .interval
            .is_some_and(|d| d.get() < std::time::Duration::from_millis(250))
        {
            errors.push(format!("{base}.interval"), "must be at least 250ms");
        }
        errors
    }

    /// The peers as the dashboard reads them.
    pub fn peers(&self) -> Vec<Peer> {
        self.sidecars
            .iter()
            .map(|p| Peer {
                name: p.name.clone(),
                url: p.url.trim_end_matches('/').to_owned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_yaml;

    #[test]
    fn reads_and_checks_the_section() {
        let c: DashboardConfig = parse_yaml(
            "sidecars: [{ name: order, url: 'http://127.0.0.1:4291' }]\njaeger_url: http://localhost:16686\n",
        )
        .unwrap();
        assert!(c.validate("dashboard").is_empty());
        assert_eq!(c.peers()[0].url, "http://127.0.0.1:4291");
        let bad: DashboardConfig = parse_yaml(
            "sidecars: [{ name: '', url: 'ftp://x' }]\njaeger_url: nope\nmax_streams: 0\ninterval: 10ms\n",
        )
        .unwrap();
        let paths: Vec<String> = bad
            .validate("dashboard")
            .iter()
            .map(|e| e.path.clone())
            .collect();
        assert_eq!(
            paths,
            [
                "dashboard.sidecars[0].name",
                "dashboard.sidecars[0].url",
                "dashboard.jaeger_url",
                "dashboard.max_streams",
                "dashboard.interval"
            ]
        );
    }
}
