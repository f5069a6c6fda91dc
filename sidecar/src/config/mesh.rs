//! The mesh sections of `sidecar.yaml`: how the inbound port treats TLS and
//! who may call what (`inbound.tls`, `inbound.authorization`), and how each
//! destination is reached (`services.<name>.tls`).
//!
//! ```yaml
//! inbound:
//!   tls:
//!     mode: permissive            # or strict
//!   authorization:
//!     default: all-authenticated  # or allow-all, deny
//!     rules:
//!       - paths: [/v1/payments, /v1/payments/*]
//!         methods: [POST]
//!         identities:
//!           - spiffe://weir.local/ns/default/sa/order
//!           - spiffe://weir.local/ns/default/sa/gateway
//! services:
//!   payment:
//!     tls:
//!       mode: mtls                # or plaintext
//!       identity: spiffe://weir.local/ns/default/sa/payment
//! ```
//!
//! The defaults depend on whether the sidecar has a workload identity: with
//! one, every destination is mutual TLS and the inbound authorization default
//! is `all-authenticated` (any workload of the trust domain, as Linkerd does
//! in a meshed namespace); without one, both stay plaintext and `allow-all`.

use http::Method;
use proxy_core::config::ConfigErrors;
use proxy_core::identity::SpiffeId;
use serde::{Deserialize, Serialize};

/// `inbound.tls:`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InboundTlsFile {
    #[serde(default)]
    pub mode: InboundTlsMode,
}

/// What the inbound port accepts.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InboundTlsMode {
    /// TLS (detected on the first byte) and plaintext on the same port; a TLS
    /// client may go without a certificate. Authorization then decides per
    /// request, so apps outside the mesh can be let in on purpose.
    #[default]
    Permissive,
    /// TLS with a client certificate of the trust domain only; plaintext
    /// connections and TLS clients without a valid certificate are closed.
    Strict,
}

/// `inbound.authorization:`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationFile {
    /// What applies to a request no rule matches. Absent: `all-authenticated`
    /// when the sidecar has an identity, `allow-all` when it has none.
    #[serde(default)]
    pub default: Option<Access>,
    /// Checked in order; the first rule whose paths and methods match decides.
    #[serde(default)]
    pub rules: Vec<RuleFile>,
}

/// Who may call, as a default or a rule's `allow`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Any caller that proved an identity of the trust domain.
    AllAuthenticated,
    /// Anyone, plaintext callers included.
    AllowAll,
    /// No one.
    Deny,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::AllAuthenticated => "all-authenticated",
            Access::AllowAll => "allow-all",
            Access::Deny => "deny",
        }
    }
}

/// One rule of `inbound.authorization.rules`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Exact paths, or prefixes written `/prefix/*` (which match `/prefix`
    /// too). Empty: every path.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Empty: every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// The identities allowed (exactly one of `identities` and `allow`).
    #[serde(default)]
    pub identities: Vec<String>,
    #[serde(default)]
    pub allow: Option<Access>,
}

/// A validated path pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathPattern {
    Exact(String),
    /// `/v1/payments/*`: `/v1/payments` and everything below it.
    Prefix(String),
}

impl PathPattern {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(p) => path == p,
            PathPattern::Prefix(p) => path
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }
}

/// Who a matching rule lets in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleAllow {
    Identities(Vec<SpiffeId>),
    Access(Access),
}

/// A validated rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub paths: Vec<PathPattern>,
    pub methods: Vec<Method>,
    pub allow: RuleAllow,
}

/// The validated `inbound.authorization`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizationSettings {
    pub default: Option<Access>,
    pub rules: Vec<Rule>,
}

impl AuthorizationFile {
    pub fn validate(&self, base: &str, errs: &mut ConfigErrors) -> AuthorizationSettings {
        let mut rules = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let at = format!("{base}.rules[{i}]");
            let mut paths = Vec::new();
            for (j, p) in r.paths.iter().enumerate() {
                if !p.starts_with('/') {
                    errs.push(format!("{at}.paths[{j}]"), "must start with /");
                    continue;
                }
                match p.strip_suffix("/*") {
                    Some(prefix) if !prefix.contains('*') => {
                        paths.push(PathPattern::Prefix(prefix.to_owned()));
                    }
                    None if !p.contains('*') => paths.push(PathPattern::Exact(p.clone())),
                    _ => errs.push(
                        format!("{at}.paths[{j}]"),
                        "`*` is only allowed as a final `/*` (a prefix)",
                    ),
                }
            }
            let mut methods = Vec::new();
            for (j, m) in r.methods.iter().enumerate() {
                match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                    Ok(m) => methods.push(m),
                    Err(_) => errs.push(format!("{at}.methods[{j}]"), "not an HTTP method"),
                }
            }
            let mut ids = Vec::new();
            for (j, id) in r.identities.iter().enumerate() {
                match SpiffeId::parse(id) {
                    Ok(id) => ids.push(id),
                    Err(e) => errs.push(format!("{at}.identities[{j}]"), e.to_string()),
                }
            }
            let allow = match (r.identities.is_empty(), r.allow) {
                (false, None) => RuleAllow::Identities(ids),
                (true, Some(a)) => RuleAllow::Access(a),
                (false, Some(_)) => {
                    errs.push(at.clone(), "set either identities or allow, not both");
                    continue;
                }
                (true, None) => {
                    errs.push(at.clone(), "needs identities or allow");
                    continue;
                }
            };
            rules.push(Rule {
                paths,
                methods,
                allow,
            });
        }
        AuthorizationSettings {
            default: self.default,
            rules,
        }
    }
}

/// `services.<name>.tls:`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceTlsFile {
    /// Absent: `mtls` when the sidecar has an identity, else `plaintext`.
    #[serde(default)]
    pub mode: Option<OutboundTlsMode>,
    /// The SPIFFE ID the destination's sidecars must prove. Absent: any
    /// identity of the trust domain.
    #[serde(default)]
    pub identity: Option<String>,
}

/// How a destination is reached.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OutboundTlsMode {
    /// Mutual TLS to the destination's sidecar.
    Mtls,
    /// Plain TCP, for destinations outside the mesh.
    Plaintext,
}

/// The validated `services.<name>.tls`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTls {
    pub mode: Option<OutboundTlsMode>,
    pub identity: Option<SpiffeId>,
}

impl ServiceTlsFile {
    pub fn validate(&self, base: &str, errs: &mut ConfigErrors) -> ServiceTls {
        let identity = self
            .identity
            .as_ref()
            .and_then(|id| match SpiffeId::parse(id) {
                Ok(id) => Some(id),
                Err(e) => {
                    errs.push(format!("{base}.identity"), e.to_string());
                    None
                }
            });
        if identity.is_some() && self.mode == Some(OutboundTlsMode::Plaintext) {
            errs.push(
                format!("{base}.identity"),
                "a plaintext destination proves no identity; remove it or use mode: mtls",
            );
        }
        ServiceTls {
            mode: self.mode,
            identity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        let p = PathPattern::Prefix("/v1/payments".into());
        assert!(p.matches("/v1/payments"));
        assert!(p.matches("/v1/payments/42"));
        assert!(!p.matches("/v1/paymentsx"));
        assert!(!p.matches("/v1"));
    }

    #[test]
    fn reports_every_bad_rule_with_its_path() {
        let file: AuthorizationFile = serde_json::from_value(serde_json::json!({
            "rules": [
                {"paths": ["v1"], "methods": ["PO ST"], "identities": ["spiffe://Bad/x"]},
                {"paths": ["/a*b"], "allow": "deny", "identities": ["spiffe://weir.local/a"]},
                {"paths": ["/ok"]},
            ]
        }))
        .unwrap();
        let mut errs = ConfigErrors::new();
        file.validate("inbound.authorization", &mut errs);
        let text = errs.to_string();
        for path in [
            "inbound.authorization.rules[0].paths[0]",
            "inbound.authorization.rules[0].methods[0]",
            "inbound.authorization.rules[0].identities[0]",
            "inbound.authorization.rules[1].paths[0]",
            "inbound.authorization.rules[1]",
            "inbound.authorization.rules[2]",
        ] {
            assert!(text.contains(path), "{path} missing in {text}");
        }
    }
}
