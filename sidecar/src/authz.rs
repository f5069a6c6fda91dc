//! Inbound authorization by workload identity: which callers may make which
//! requests, decided from the identity a client certificate proved (never
//! from anything in the request itself).

use http::Method;
use proxy_core::identity::SpiffeId;
use proxy_core::mtls::PeerIdentity;
use proxy_core::server::ConnInfo;

use crate::config::mesh::{Access, AuthorizationSettings, RuleAllow};

/// Who is calling, as far as the connection proves it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Caller<'a> {
    /// A plaintext connection.
    Plaintext,
    /// TLS without a client certificate.
    Anonymous,
    /// TLS with a verified client certificate.
    Peer(&'a SpiffeId),
}

impl<'a> Caller<'a> {
    pub(crate) fn of(conn: &'a ConnInfo) -> Caller<'a> {
        match (&conn.peer, conn.tls) {
            (Some(PeerIdentity(id)), _) => Caller::Peer(id),
            (None, true) => Caller::Anonymous,
            (None, false) => Caller::Plaintext,
        }
    }

    /// The metrics label and access-log value: the identity, or `none` /
    /// `plaintext`. Bounded by the workloads of the trust domain.
    pub(crate) fn label(&self) -> &str {
        match self {
            Caller::Plaintext => "plaintext",
            Caller::Anonymous => "none",
            Caller::Peer(id) => id.as_str(),
        }
    }

    pub(crate) fn id(&self) -> Option<&'a SpiffeId> {
        match self {
            Caller::Peer(id) => Some(id),
            _ => None,
        }
    }
}

/// The policy of one config version, with its default resolved.
#[derive(Debug)]
pub(crate) struct Authorizer {
    settings: AuthorizationSettings,
    default: Access,
}

impl Authorizer {
    /// `meshed`: whether the sidecar has a workload identity, which decides
    /// the default when the config names none.
    pub(crate) fn new(settings: AuthorizationSettings, meshed: bool) -> Self {
        let default = settings.default.unwrap_or(if meshed {
            Access::AllAuthenticated
        } else {
            Access::AllowAll
        });
        Self { settings, default }
    }

    pub(crate) fn default_access(&self) -> Access {
        self.default
    }

    /// Whether `caller` may make `method path`: the first rule matching the
    /// path and method decides, else the default.
    pub(crate) fn allows(&self, method: &Method, path: &str, caller: Caller<'_>) -> bool {
        let rule = self.settings.rules.iter().find(|r| {
            (r.paths.is_empty() || r.paths.iter().any(|p| p.matches(path)))
                && (r.methods.is_empty() || r.methods.contains(method))
        });
        match rule.map(|r| &r.allow) {
            Some(RuleAllow::Identities(ids)) => caller.id().is_some_and(|id| ids.contains(id)),
            Some(RuleAllow::Access(a)) => access(*a, caller),
            None => access(self.default, caller),
        }
    }
}

fn access(a: Access, caller: Caller<'_>) -> bool {
    match a {
        Access::AllowAll => true,
        Access::AllAuthenticated => caller.id().is_some(),
        Access::Deny => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mesh::{PathPattern, Rule};

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn first_matching_rule_decides_then_the_default() {
        let order = id("spiffe://weir.local/ns/default/sa/order");
        let gateway = id("spiffe://weir.local/ns/default/sa/gateway");
        let catalog = id("spiffe://weir.local/ns/default/sa/catalog");
        let settings = AuthorizationSettings {
            default: None,
            rules: vec![
                Rule {
                    paths: vec![PathPattern::Prefix("/v1/payments".into())],
                    methods: vec![Method::POST],
                    allow: RuleAllow::Identities(vec![order.clone(), gateway.clone()]),
                },
                Rule {
                    paths: vec![PathPattern::Exact("/healthz".into())],
                    methods: vec![],
                    allow: RuleAllow::Access(Access::AllowAll),
                },
            ],
        };
        let a = Authorizer::new(settings.clone(), true);
        let post = Method::POST;
        assert!(a.allows(&post, "/v1/payments", Caller::Peer(&order)));
        assert!(a.allows(&post, "/v1/payments/7", Caller::Peer(&gateway)));
        assert!(!a.allows(&post, "/v1/payments", Caller::Peer(&catalog)));
        assert!(!a.allows(&post, "/v1/payments", Caller::Plaintext));
        // Other methods fall to the default: any identity, no plaintext.
        assert!(a.allows(&Method::GET, "/v1/payments", Caller::Peer(&catalog)));
        assert!(!a.allows(&Method::GET, "/v1/payments", Caller::Anonymous));
        assert!(a.allows(&Method::GET, "/healthz", Caller::Plaintext));
        // Without an identity the default opens up, rules still hold.
        let open = Authorizer::new(settings, false);
        assert!(open.allows(&Method::GET, "/v1/orders", Caller::Plaintext));
        assert!(!open.allows(&post, "/v1/payments", Caller::Plaintext));
    }
}
