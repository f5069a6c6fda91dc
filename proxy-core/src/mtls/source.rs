//! The credentials a handshake uses: the latest on the watch, prepared once
//! per version.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;
use rustls::sign::CertifiedKey;
use rustls_pki_types::TrustAnchor;

use crate::identity::{Credentials, CredentialsWatch, SpiffeId};

/// What one version of the credentials gives a handshake, built once when the
/// version is first used: the leaf chain with its loaded signing key, and the
/// trust anchors parsed for chain building.
pub(crate) struct Material {
    /// The version this was built from (compared by pointer).
    source: Arc<Credentials>,
    pub(crate) certified: Arc<CertifiedKey>,
    pub(crate) anchors: Vec<TrustAnchor<'static>>,
}

impl Material {
    pub(crate) fn id(&self) -> &SpiffeId {
        &self.source.id
    }

    pub(crate) fn trust_domain(&self) -> &str {
        self.source.id.trust_domain()
    }

    fn build(creds: Arc<Credentials>) -> Result<Material, rustls::Error> {
        let signing = crate::tls::provider()
            .key_provider
            .load_private_key(creds.key.clone_key())?;
        let certified = CertifiedKey::new(creds.chain.clone(), signing);
        certified.keys_match()?;
        let anchors = creds
            .trust_anchors
            .iter()
            .map(|der| {
                webpki::anchor_from_trusted_cert(der)
                    .map(|a| a.to_owned())
                    .map_err(|e| rustls::Error::General(format!("trust anchor: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if anchors.is_empty() {
            return Err(rustls::Error::General("no trust anchors".into()));
        }
        Ok(Material {
            source: creds,
            certified: Arc::new(certified),
            anchors,
        })
    }
}

/// The workload's credentials as handshakes see them: a watch of the latest
/// [`Credentials`] and the material built from the version last used.
///
/// Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct CredentialSource {
    watch: CredentialsWatch,
    cache: Arc<ArcSwapOption<Material>>,
    /// Held while a new version is built, so concurrent handshakes after a
    /// rotation build it once (and never put an older version back).
    building: Arc<Mutex<()>>,
    builds: Arc<AtomicU64>,
}

impl std::fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialSource")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl CredentialSource {
    pub fn new(watch: CredentialsWatch) -> Self {
        Self {
            watch,
            cache: Arc::new(ArcSwapOption::empty()),
            building: Arc::new(Mutex::new(())),
            builds: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The identity of the current credentials, `None` before the first.
    pub fn id(&self) -> Option<SpiffeId> {
        self.watch.borrow().as_ref().map(|c| c.id.clone())
    }

    /// The latest credentials on the watch.
    pub fn current_credentials(&self) -> Option<Arc<Credentials>> {
        self.watch.borrow().clone()
    }

    /// How many versions of the credentials handshakes have used so far: it
    /// grows by one when the first handshake after a rotation runs.
    pub fn versions_used(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }

    /// The material of the latest credentials, built on the first handshake
    /// that sees a new version. `None` before the first certificate, or when
    /// the latest one cannot be used (logged).
    pub(crate) fn current(&self) -> Option<Arc<Material>> {
        let cached = |creds: &Arc<Credentials>| {
            self.cache
                .load_full()
                .filter(|m| Arc::ptr_eq(&m.source, creds))
        };
        let creds = self.watch.borrow().clone()?;
        if let Some(m) = cached(&creds) {
            return Some(m);
        }
        let _building = self.building.lock().unwrap_or_else(PoisonError::into_inner);
        // Whoever held the lock may have built it; the watch may have moved on.
        let creds = self.watch.borrow().clone()?;
        if let Some(m) = cached(&creds) {
            return Some(m);
        }
        match Material::build(creds) {
            Ok(m) => {
                let m = Arc::new(m);
                self.cache.store(Some(m.clone()));
                self.builds.fetch_add(1, Ordering::Relaxed);
                tracing::info!(id = %m.id(), "workload credentials in use");
                Some(m)
            }
            Err(e) => {
                tracing::warn!(error = %e, "workload credentials cannot be used");
                None
            }
        }
    }
}
