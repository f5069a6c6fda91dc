//! `identity:` where the sidecar's mTLS certificate comes from. The section
//! (fields, `WEIR_IDENTITY_*` overrides, validation) is shared with the
//! gateway and lives in `weir_identity::settings`; the sidecar's default
//! `service_account` is its `service`.

pub(super) use weir_identity::settings::apply_env;
pub use weir_identity::settings::{
    DEFAULT_TRUST_DOMAIN, FilesFile, IdentityFile, IdentitySettings, IdentitySource, IssuerFile,
};

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::SidecarConfig;

    const BASE: &str = "service: order\ninbound: { address: 127.0.0.1:4143, app: 127.0.0.1:8082 }\nadmin: { address: 127.0.0.1:4191 }\n";

    fn load(extra: &str, env: &[(&str, &str)]) -> Result<SidecarConfig, String> {
        let env: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SidecarConfig::from_yaml(&format!("{BASE}{extra}"), &|k: &str| env.get(k).cloned())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn issuer_section_with_defaults() {
        let c = load(
            "identity:\n  issuer: { url: https://127.0.0.1:7443, trust_anchor: /a.crt, token_file: /t }\n",
            &[],
        )
        .unwrap();
        let id = c.identity.unwrap();
        assert_eq!(id.id.as_str(), "spiffe://weir.local/ns/default/sa/order");
        assert!(matches!(id.source, IdentitySource::Issuer { .. }));
        assert!(load("", &[]).unwrap().identity.is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let e = load("identity: { trust_domain: Bad }\n", &[]).unwrap_err();
        assert!(e.contains("identity.trust_domain"), "{e}");
        assert!(e.contains("needs an issuer or files"), "{e}");
        let e = load(
            "identity:\n  issuer: { url: http://x:1, trust_anchor: /a, token_file: /t }\n",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("identity.issuer.url"), "{e}");
        let e = load(
            "identity:\n  files: { cert: a, key: b, ca: c, extra: d }\n",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("identity.files"), "{e}");
        let e = load(
            "identity: { service_account: 'a b', files: { cert: a, key: b, ca: c } }\n",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("identity.service_account"), "{e}");
    }

    #[test]
    fn kubernetes_sets_it_all_from_the_environment() {
        let c = load(
            "",
            &[
                (
                    "WEIR_IDENTITY_ISSUER_URL",
                    "https://identity.weir-system.svc:8443",
                ),
                (
                    "WEIR_IDENTITY_TRUST_ANCHOR",
                    "/var/run/weir/identity/anchor.crt",
                ),
                ("WEIR_IDENTITY_TOKEN_FILE", "/var/run/secrets/weir/token"),
                ("WEIR_IDENTITY_NAMESPACE", "shop"),
                ("WEIR_IDENTITY_SERVICE_ACCOUNT", "order-sa"),
                ("WEIR_IDENTITY_TRUST_DOMAIN", "cluster.local"),
            ],
        )
        .unwrap();
        let id = c.identity.unwrap();
        assert_eq!(id.id.as_str(), "spiffe://cluster.local/ns/shop/sa/order-sa");
        assert_eq!(
            id.source,
            IdentitySource::Issuer {
                url: "https://identity.weir-system.svc:8443".into(),
                trust_anchor: "/var/run/weir/identity/anchor.crt".into(),
                token_file: "/var/run/secrets/weir/token".into(),
            }
        );
        let c = load("", &[("WEIR_IDENTITY_DIR", "/tls")]).unwrap();
        assert!(matches!(
            c.identity.unwrap().source,
            IdentitySource::Files { cert, .. } if cert == Path::new("/tls/tls.crt")
        ));
    }
}
