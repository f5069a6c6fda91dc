//! `admin:` the separate listener for probes, metrics and operations, and who
//! may use it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigErrors;

/// `admin:` where the admin listener binds and how it is protected.
///
/// Every request must name the listener itself in `Host` (its own `ip:port`
/// or `localhost:port`) or one of `allowed_hosts`, which defeats DNS
/// rebinding; mutating endpoints also refuse cross-site browser requests and,
/// when a token is configured, require it (see `proxy_core::admin`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub address: SocketAddr,
    /// More names the admin listener answers to, e.g. a Kubernetes Service
    /// (`gateway-admin.weir.svc`). `name` accepts any port, `name:port` only
    /// that one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// A file holding the bearer token that mutating endpoints (`POST
    /// /reload`) require (relative to the config file). `WEIR_ADMIN_TOKEN`
    /// and `WEIR_ADMIN_TOKEN_FILE` take precedence. The file is read again on
    /// each mutating request, so a rotated token applies without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

impl AdminConfig {
    /// An admin listener on `address` with nothing else configured.
    pub fn at(address: SocketAddr) -> Self {
        Self {
            address,
            allowed_hosts: Vec::new(),
            token_file: None,
        }
    }

    /// Checks the `allowed_hosts` entries; `base` is the section's path
    /// (`admin`).
    pub fn validate(&self, base: &str) -> ConfigErrors {
        let mut errors = ConfigErrors::new();
        for (i, h) in self.allowed_hosts.iter().enumerate() {
            if let Err(e) = crate::admin::HostPattern::parse(h) {
                errors.push(format!("{base}.allowed_hosts[{i}]"), e);
            }
        }
        if let Some(f) = &self.token_file
            && f.as_os_str().is_empty()
        {
            errors.push(format!("{base}.token_file"), "must not be empty");
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_yaml;

    #[test]
    fn reads_the_address_alone_and_with_protection() {
        let a: AdminConfig = parse_yaml("address: 127.0.0.1:9901\n").unwrap();
        assert_eq!(a, AdminConfig::at("127.0.0.1:9901".parse().unwrap()));
        let a: AdminConfig = parse_yaml(
            "address: 0.0.0.0:9901\nallowed_hosts: [gw-admin.weir.svc, 'admin.example:443']\ntoken_file: /run/secrets/admin-token\n",
        )
        .unwrap();
        assert!(a.validate("admin").is_empty());
        assert_eq!(a.allowed_hosts.len(), 2);
    }

    #[test]
    fn rejects_hosts_that_are_not_names() {
        let a: AdminConfig =
            parse_yaml("address: 0.0.0.0:9901\nallowed_hosts: ['http://x', 'a b', 'u@h', '']\n")
                .unwrap();
        let paths: Vec<String> = a.validate("admin").iter().map(|e| e.path.clone()).collect();
        assert_eq!(
            paths,
            [
                "admin.allowed_hosts[0]",
                "admin.allowed_hosts[1]",
                "admin.allowed_hosts[2]",
                "admin.allowed_hosts[3]"
            ]
        );
    }
}
