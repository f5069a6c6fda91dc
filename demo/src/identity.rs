//! The demo's workload identity: a trust anchor and issuer under the data
//! directory (made on the first start, reused after), the issuer running in
//! this process, and a bootstrap token per service that its sidecar reads.
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
        let root = data_dir.join("identity");
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

    /// Gives service `svc`'s sidecar config its `identity:` section.
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
