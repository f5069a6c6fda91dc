//! Credentials from files, as cert-manager writes them into a Secret volume
//! (`tls.crt` with the chain, `tls.key`, `ca.crt` with the trust anchors).
//!
//! The files are watched and reloaded when they change. Kubernetes updates
//! a Secret volume by swapping a `..data` symlink, so all three files change
//! at once; other writers may replace them one by one, and a reload in
//! between sees a certificate and key that do not match. Any reload that
//! fails its checks (`svid.rs`) is logged and counted, and the credentials
//! already published stay in use until a later change makes the files
//! whole again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proxy_core::identity::{Credentials, CredentialsSender};
use proxy_core::shutdown::Shutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::metrics::IdentityMetrics;
use crate::svid::{self, SvidError};

/// Writers settle within this long after the first change event.
const SETTLE: Duration = Duration::from_millis(100);

/// Why the files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{path}: {source}")]
    Pem {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{0}: no certificate in the file")]
    Empty(PathBuf),
    #[error("{path}: {source}")]
    Svid {
        path: PathBuf,
        #[source]
        source: SvidError,
    },
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// The three files.
#[derive(Debug, Clone)]
pub struct FileSource {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl FileSource {
    /// The cert-manager layout in one directory.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            ca: dir.join("ca.crt"),
        }
    }

    /// Reads and checks the files once.
    pub fn load(&self) -> Result<Credentials, FilesError> {
        let chain = certs(&self.cert)?;
        let anchors = certs(&self.ca)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|source| FilesError::Pem {
            path: self.key.clone(),
            source,
        })?;
        svid::check(chain, key, anchors, None).map_err(|source| FilesError::Svid {
            path: self.cert.clone(),
            source,
        })
    }

    /// Loads the files (an error if they are not usable now), publishes them,
    /// and reloads them on every change until `shutdown`.
    pub fn watch(
        self,
        tx: CredentialsSender,
        metrics: IdentityMetrics,
        shutdown: Shutdown,
    ) -> Result<(), FilesError> {
        use notify::{RecursiveMode, Watcher};
        let first = self.load().inspect_err(|_| {
            metrics.failures.inc();
        })?;
        publish(&tx, &metrics, first);

        let (events, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let names: Vec<_> = [&self.cert, &self.key, &self.ca]
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_owned()))
            .collect();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                let relevant = ev.paths.iter().any(|p| {
                    p.file_name().is_some_and(|n| names.iter().any(|m| m == n))
                        || p.ends_with("..data")
                });
                if relevant && !ev.kind.is_access() {
                    let _ = events.try_send(());
                }
            }
        })
        .map_err(|source| FilesError::Watch {
            path: self.cert.clone(),
            source,
        })?;
        let mut dirs: Vec<PathBuf> = [&self.cert, &self.key, &self.ca]
            .iter()
            .map(|p| {
                p.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_owned()
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        for dir in &dirs {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|source| FilesError::Watch {
                    path: dir.clone(),
                    source,
                })?;
        }
        tokio::spawn(async move {
            let _watcher = watcher;
            let stop = shutdown.wait();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    ev = rx.recv() => {
                        if ev.is_none() { return; }
                        tokio::time::sleep(SETTLE).await;
                        while rx.try_recv().is_ok() {}
                        self.reload(&tx, &metrics);
                    }
                    _ = &mut stop => return,
                }
            }
        });
        Ok(())
    }

    fn reload(&self, tx: &CredentialsSender, metrics: &IdentityMetrics) {
        match self.load() {
            Ok(creds) => {
                let same = tx.borrow().as_ref().is_some_and(|c| {
                    c.chain == creds.chain && c.trust_anchors == creds.trust_anchors
                });
                if !same {
                    publish(tx, metrics, creds);
                }
            }
            Err(e) => {
                metrics.failures.inc();
                tracing::warn!(error = %e, "workload certificate files are not usable; the current certificate stays in use");
            }
        }
    }
}

fn publish(tx: &CredentialsSender, metrics: &IdentityMetrics, creds: Credentials) {
    tracing::info!(
        spiffe_id = %creds.id,
        not_after = %humantime::format_rfc3339_seconds(creds.not_after),
        "workload certificate loaded from files"
    );
    metrics.published(creds.not_after);
    tx.send_replace(Some(Arc::new(creds)));
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, FilesError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| FilesError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(FilesError::Empty(path.to_owned()));
    }
    Ok(certs)
}
