//! `identity:` where a workload's mTLS certificate comes from: the same
//! section in the sidecar's and the gateway's config files, validated here
//! once and started by [`crate::source::start`].
//!
//! ```yaml
//! identity:
//!   trust_domain: weir.local        # default weir.local
//!   namespace: default              # default "default"
//!   service_account: order          # default: the sidecar's `service`; `gateway` for the gateway
//!   issuer:                         # either an issuer …
//!     url: https://127.0.0.1:7443
//!     trust_anchor: identity/anchor.crt
//!     token_file: identity/tokens/order
//!   # files:                        # … or files written by cert-manager
//!   #   cert: /var/run/weir/tls/tls.crt
//!   #   key: /var/run/weir/tls/tls.key
//!   #   ca: /var/run/weir/tls/ca.crt
//! ```
//!
//! The workload's SPIFFE ID is `spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>`;
//! with `issuer:` a certificate for any other ID is refused, with `files:`
//! the ID is the certificate's own. Relative paths are relative to the
//! config file ([`IdentityFile::resolve_paths`]). Environment overrides
//! ([`apply_env`]; the sidecar applies them, what a Kubernetes pod varies):
//!
//! | variable | overrides |
//! | --- | --- |
//! | `WEIR_IDENTITY_TRUST_DOMAIN` | `identity.trust_domain` |
//! | `WEIR_IDENTITY_NAMESPACE` | `identity.namespace` |
//! | `WEIR_IDENTITY_SERVICE_ACCOUNT` | `identity.service_account` |
//! | `WEIR_IDENTITY_ISSUER_URL` | `identity.issuer.url` (creates the section) |
//! | `WEIR_IDENTITY_TRUST_ANCHOR` | `identity.issuer.trust_anchor` |
//! | `WEIR_IDENTITY_TOKEN_FILE` | `identity.issuer.token_file` |
//! | `WEIR_IDENTITY_DIR` | `identity.files` as `tls.crt`, `tls.key`, `ca.crt` in that directory (creates the section) |

use std::path::{Path, PathBuf};

use proxy_core::config::ConfigErrors;
use proxy_core::identity::SpiffeId;
use serde::{Deserialize, Serialize};

/// The trust domain when none is configured.
pub const DEFAULT_TRUST_DOMAIN: &str = "weir.local";

/// `identity:` as written.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<IssuerFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesFile>,
}

/// `identity.issuer:` certificates from the Weir issuer.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IssuerFile {
    /// `https://host:port` of the issuer.
    pub url: String,
    /// The trust anchor (PEM) the issuer's serving certificate leads to.
    pub trust_anchor: PathBuf,
    /// The bearer token: a bootstrap token, or in Kubernetes the projected
    /// ServiceAccount token. Read before every request.
    pub token_file: PathBuf,
}

/// `identity.files:` certificates written by cert-manager.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilesFile {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Where the credentials come from, validated.
#[derive(Clone, Debug, PartialEq)]
pub enum IdentitySource {
    Issuer {
        url: String,
        trust_anchor: PathBuf,
        token_file: PathBuf,
    },
    Files {
        cert: PathBuf,
        key: PathBuf,
        ca: PathBuf,
    },
}

/// The validated `identity:` section.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentitySettings {
    /// The SPIFFE ID this workload expects to prove.
    pub id: SpiffeId,
    pub source: IdentitySource,
}

/// Applies the `WEIR_IDENTITY_*` overrides.
pub fn apply_env(section: &mut Option<IdentityFile>, env: &dyn Fn(&str) -> Option<String>) {
    let get = |k: &str| {
        env(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if let Some(url) = get("WEIR_IDENTITY_ISSUER_URL") {
        let s = section.get_or_insert_with(IdentityFile::default);
        s.issuer.get_or_insert_with(IssuerFile::default).url = url;
        s.files = None;
    }
    if let Some(dir) = get("WEIR_IDENTITY_DIR") {
        let dir = PathBuf::from(dir);
        let s = section.get_or_insert_with(IdentityFile::default);
        s.files = Some(FilesFile {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            ca: dir.join("ca.crt"),
        });
        s.issuer = None;
    }
    let Some(s) = section else { return };
    if let Some(v) = get("WEIR_IDENTITY_TRUST_DOMAIN") {
        s.trust_domain = Some(v);
    }
    if let Some(v) = get("WEIR_IDENTITY_NAMESPACE") {
        s.namespace = Some(v);
    }
    if let Some(v) = get("WEIR_IDENTITY_SERVICE_ACCOUNT") {
        s.service_account = Some(v);
    }
    if let Some(issuer) = &mut s.issuer {
        if let Some(v) = get("WEIR_IDENTITY_TRUST_ANCHOR") {
            issuer.trust_anchor = v.into();
        }
        if let Some(v) = get("WEIR_IDENTITY_TOKEN_FILE") {
            issuer.token_file = v.into();
        }
    }
}

impl IdentityFile {
    /// Makes relative paths relative to `dir` (the config file's directory).
    pub fn resolve_paths(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = dir.join(&*p);
            }
        };
        if let Some(i) = &mut self.issuer {
            fix(&mut i.trust_anchor);
            fix(&mut i.token_file);
        }
        if let Some(f) = &mut self.files {
            fix(&mut f.cert);
            fix(&mut f.key);
            fix(&mut f.ca);
        }
    }

    /// Validates the section into `out` (each problem named by its field
    /// under `identity.`); `service` is the default service account.
    pub fn validate(&self, service: &str, out: &mut ConfigErrors) -> Option<IdentitySettings> {
        let mut errs = ConfigErrors::new();
        let td = self.trust_domain.as_deref().unwrap_or(DEFAULT_TRUST_DOMAIN);
        let ns = self.namespace.as_deref().unwrap_or("default");
        let sa = self.service_account.as_deref().unwrap_or(service);
        let id = match SpiffeId::for_workload(td, ns, sa) {
            Ok(id) => Some(id),
            Err(e) => {
                let field = match e {
                    proxy_core::identity::SpiffeIdError::TrustDomain => "identity.trust_domain",
                    _ if SpiffeId::for_workload(td, ns, "sa").is_err() => "identity.namespace",
                    _ => "identity.service_account",
                };
                errs.push(field, e.to_string());
                None
            }
        };
        let source = match (&self.issuer, &self.files) {
            (Some(i), None) => {
                let https = i
                    .url
                    .parse::<http::Uri>()
                    .ok()
                    .filter(|u| u.scheme_str() == Some("https") && u.host().is_some());
                if https.is_none() {
                    errs.push("identity.issuer.url", "must be an https://host:port URL");
                }
                for (field, path) in [
                    ("identity.issuer.trust_anchor", &i.trust_anchor),
                    ("identity.issuer.token_file", &i.token_file),
                ] {
                    if path.as_os_str().is_empty() {
                        errs.push(field, "is required");
                    }
                }
                Some(IdentitySource::Issuer {
                    url: i.url.clone(),
                    trust_anchor: i.trust_anchor.clone(),
                    token_file: i.token_file.clone(),
                })
            }
            (None, Some(f)) => {
                for (field, path) in [
                    ("identity.files.cert", &f.cert),
                    ("identity.files.key", &f.key),
                    ("identity.files.ca", &f.ca),
                ] {
                    if path.as_os_str().is_empty() {
                        errs.push(field, "is required");
                    }
                }
                Some(IdentitySource::Files {
                    cert: f.cert.clone(),
                    key: f.key.clone(),
                    ca: f.ca.clone(),
                })
            }
            (Some(_), Some(_)) => {
                errs.push("identity", "set either issuer or files, not both");
                None
            }
            (None, None) => {
                errs.push("identity", "needs an issuer or files section");
                None
            }
        };
        let valid = errs.is_empty();
        out.extend(errs);
        match (id, source) {
            (Some(id), Some(source)) if valid => Some(IdentitySettings { id, source }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(cert: &str) -> IdentityFile {
        IdentityFile {
            files: Some(FilesFile {
                cert: cert.into(),
                key: "tls.key".into(),
                ca: "/abs/ca.crt".into(),
            }),
            ..IdentityFile::default()
        }
    }

    /// The caller names the default service account: the sidecar its
    /// `service`, the gateway `gateway`.
    #[test]
    fn the_default_service_account_is_the_callers() {
        let mut errs = ConfigErrors::new();
        let s = files("tls.crt").validate("gateway", &mut errs).unwrap();
        assert!(errs.is_empty());
        assert_eq!(s.id.as_str(), "spiffe://weir.local/ns/default/sa/gateway");
        let named = IdentityFile {
            service_account: Some("edge".into()),
            ..files("tls.crt")
        };
        let s = named.validate("gateway", &mut errs).unwrap();
        assert_eq!(s.id.as_str(), "spiffe://weir.local/ns/default/sa/edge");
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_directory() {
        let mut f = files("tls/tls.crt");
        f.resolve_paths(Path::new("/etc/weir"));
        let f = f.files.unwrap();
        assert_eq!(f.cert, Path::new("/etc/weir/tls/tls.crt"));
        assert_eq!(f.key, Path::new("/etc/weir/tls.key"));
        assert_eq!(f.ca, Path::new("/abs/ca.crt"));
    }
}
