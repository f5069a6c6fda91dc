//! The demo's workload identity: a trust anchor and issuer under the data
//! directory (made on the first start, reused after), the issuer running in
//! this process, and a bootstrap token per service that its sidecar reads
//! (and one for the gateway, which reads it the same way).
//!
//! ```text
//! <data>/identity/ca/        trust-domain, anchor.crt, anchor.key, issuer.crt, issuer.key
//! <data>/identity/tokens/S   the bootstrap token of service S (mode 0600)
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proxy_core::shutdown::Shutdown;
use serde_norway::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use weir_identity::authn::{BootstrapTokens, generate_token};
use weir_identity::{Issuer, IssuerOptions};

use crate::patch;
use crate::stack::StackError;

/// The demo's trust domain.
pub const TRUST_DOMAIN: &str = "weir.local";

/// A prepared (bound, not yet serving) issuer and what sidecars need to use it.
pub(crate) struct DemoIdentity {
    issuer: Issuer,
    listener: TcpListener,
    pub(crate) addr: SocketAddr,
    pub(crate) trust_anchor: PathBuf,
    tokens: PathBuf,
}

fn err(e: impl std::fmt::Display) -> StackError {
    StackError::Identity(e.to_string())
}

impl DemoIdentity {
    /// Loads or creates the CA and the services' tokens, and binds the
    /// issuer on `addr`.
    pub(crate) async fn prepare(
        data_dir: &Path,
        services: &[&str],
        addr: SocketAddr,
    ) -> Result<Self, StackError> {
        // Absolute: the paths go into configs that resolve relative paths
        // against their own directory (the gateway's derived config lives in
        // the data dir itself), so `data/identity/...` would become
        // `data/data/identity/...` there.
        let root = std::path::absolute(data_dir).map_err(err)?.join("identity");
        let tokens = root.join("tokens");
        std::fs::create_dir_all(&tokens).map_err(err)?;
        let mut pairs = Vec::new();
        for svc in services {
            pairs.push(((*svc).to_owned(), token_for(&tokens.join(svc))?));
        }
        let authn = BootstrapTokens::from_pairs(pairs).map_err(err)?;
        let issuer = Issuer::load_or_init(
            &root.join("ca"),
            TRUST_DOMAIN,
            Arc::new(authn),
            &IssuerOptions::default(),
        )
        .map_err(err)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StackError::Bind {
                what: "identity issuer".into(),
                addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(err)?;
        Ok(Self {
            issuer,
            listener,
            addr,
            trust_anchor: root.join("ca").join(weir_identity::ca::ANCHOR_CERT),
            tokens,
        })
    }

    /// Gives workload `svc`'s config (a sidecar's, or the gateway's) its
    /// `identity:` section.
    pub(crate) fn patch(&self, doc: &mut Value, svc: &str) {
        let s = |v: String| Value::String(v);
        patch::set(doc, "identity.trust_domain", s(TRUST_DOMAIN.into()));
        patch::set(
            doc,
            "identity.issuer.url",
            s(format!("https://127.0.0.1:{}", self.addr.port())),
        );
        patch::set(
            doc,
            "identity.issuer.trust_anchor",
            s(self.trust_anchor.display().to_string()),
        );
        patch::set(
            doc,
            "identity.issuer.token_file",
            s(self.tokens.join(svc).display().to_string()),
        );
    }

    /// Serves the issuer until `stop`.
    pub(crate) fn spawn(self, stop: Shutdown) -> JoinHandle<Result<(), String>> {
        tokio::spawn(async move {
            self.issuer.serve(self.listener, stop).await;
            Ok(())
        })
    }
}

/// The token in `path`, written with a new one on the first start.
fn token_for(path: &Path) -> Result<String, StackError> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(format!("{}: {e}", path.display()))),
    }
    let token = generate_token();
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err(format!("{}: {e}", path.display())))?;
    f.write_all(token.as_bytes())
        .map_err(|e| err(format!("{}: {e}", path.display())))?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir().join(format!("weir-demo-id-{}-{nanos}", std::process::id()))
    }

    /// What a sidecar of the demo gets: a config section that validates
    /// and, started, yields its certificate from the in-process issuer. A
    /// second start reuses the same anchor and tokens.
    #[tokio::test]
    async fn sidecars_get_their_identity_from_the_in_process_issuer() {
        let data = scratch();
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        let first = DemoIdentity::prepare(&data, &["catalog", "order"], local)
            .await
            .unwrap();
        let anchor = std::fs::read(&first.trust_anchor).unwrap();
        let token = std::fs::read(first.tokens.join("order")).unwrap();
        drop(first);
        let id = DemoIdentity::prepare(&data, &["catalog", "order"], local)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&id.trust_anchor).unwrap(), anchor);
        assert_eq!(std::fs::read(id.tokens.join("order")).unwrap(), token);

        let mut doc: Value = serde_norway::from_str(
            "service: order\ninbound: { address: 127.0.0.1:0, app: 127.0.0.1:9 }\nadmin: { address: 127.0.0.1:0 }\n",
        )
        .unwrap();
        id.patch(&mut doc, "order");
        let text = serde_norway::to_string(&doc).unwrap();
        let cfg = sidecar::SidecarConfig::from_yaml(&text, &|_: &str| None).unwrap();
        let settings = cfg.identity.unwrap();

        let (stop, shutdown) = proxy_core::shutdown::channel();
        let issuer = id.spawn(shutdown.clone());
        let mut registry = prometheus_client::registry::Registry::default();
        let mut watch = sidecar::identity::start(&settings, &mut registry, shutdown)
            .await
            .unwrap();
        let creds = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            watch.wait_for(Option::is_some),
        )
        .await
        .unwrap()
        .unwrap()
        .clone()
        .unwrap();
        assert_eq!(creds.id.as_str(), "spiffe://weir.local/ns/default/sa/order");
        stop.trigger();
        issuer.await.unwrap().unwrap();
        let _ = std::fs::remove_dir_all(data);
    }
}
