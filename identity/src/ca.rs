//! The trust anchor and the issuer certificate, kept as PEM files in one
//! directory.
//!
//! Two levels, as Linkerd and istiod do it: a long-lived **trust anchor**
//! (the root every workload trusts) signs a shorter-lived **issuer**
//! certificate, and only the issuer signs workload certificates. The issuer
//! service reads the issuer's key and never the anchor's, so the anchor key
//! can be moved offline after `init` and the issuer replaced without
//! touching a single workload's trust.
//!
//! Files in the directory:
//!
//! | file | what | mode |
//! | --- | --- | --- |
//! | `trust-domain` | the trust domain, e.g. `weir.local` | 0644 |
//! | `anchor.crt` | trust anchor certificate (give it to every workload) | 0644 |
//! | `anchor.key` | trust anchor key (only `init` uses it) | 0600 |
//! | `issuer.crt` | issuer certificate, signed by the anchor | 0644 |
//! | `issuer.key` | issuer key | 0600 |

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

pub const TRUST_DOMAIN_FILE: &str = "trust-domain";
pub const ANCHOR_CERT: &str = "anchor.crt";
pub const ANCHOR_KEY: &str = "anchor.key";
pub const ISSUER_CERT: &str = "issuer.crt";
pub const ISSUER_KEY: &str = "issuer.key";

/// How long a new trust anchor is valid: long, because replacing it means
/// redistributing it to every workload.
pub const ANCHOR_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a new issuer certificate is valid.
pub const ISSUER_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates start this much in the past, so a peer whose clock is a
/// little behind does not see them as not yet valid.
pub const BACKDATE: Duration = Duration::from_secs(60);

/// Why the CA directory could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} already exists; refusing to overwrite a CA")]
    Exists(PathBuf),
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("the CA in {dir} is for trust domain {found:?}, not {wanted:?}")]
    TrustDomainMismatch {
        dir: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("invalid trust domain {0:?}: lower-case letters, digits, '.', '-' and '_' only")]
    TrustDomain(String),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A loaded CA: what the issuer signs with and hands out.
pub struct Ca {
    trust_domain: String,
    anchor: CertificateDer<'static>,
    anchor_pem: String,
    issuer_cert: CertificateDer<'static>,
    issuer_pem: String,
    issuer: rcgen::Issuer<'static, KeyPair>,
    issuer_not_after: SystemTime,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .field("issuer_not_after", &self.issuer_not_after)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Creates a new trust anchor and issuer in `dir` (created if missing).
    /// Refuses to overwrite an existing CA.
    pub fn init(dir: &Path, trust_domain: &str) -> Result<Ca, CaError> {
        check_trust_domain(trust_domain)?;
        std::fs::create_dir_all(dir).map_err(|source| io(dir, source))?;
        for f in [ANCHOR_KEY, ISSUER_KEY, ANCHOR_CERT, ISSUER_CERT] {
            if dir.join(f).exists() {
                return Err(CaError::Exists(dir.join(f)));
            }
        }
        let now = SystemTime::now();
        let anchor_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut anchor_params = ca_params(
            &format!("Weir trust anchor {trust_domain}"),
            now,
            ANCHOR_LIFETIME,
        );
        anchor_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        let anchor_cert = anchor_params.self_signed(&anchor_key)?;
        let anchor_issuer = rcgen::Issuer::new(anchor_params, anchor_key);

        let issuer_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut issuer_params =
            ca_params(&format!("Weir issuer {trust_domain}"), now, ISSUER_LIFETIME);
        issuer_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let issuer_cert = issuer_params.signed_by(&issuer_key, &anchor_issuer)?;

        // Keys first: a directory with certificates but no key fails to load
        // loudly, never the other way round.
        write_file(
            &dir.join(ANCHOR_KEY),
            &anchor_issuer.key().serialize_pem(),
            0o600,
        )?;
        write_file(&dir.join(ISSUER_KEY), &issuer_key.serialize_pem(), 0o600)?;
        write_file(&dir.join(ANCHOR_CERT), &anchor_cert.pem(), 0o644)?;
        write_file(&dir.join(ISSUER_CERT), &issuer_cert.pem(), 0o644)?;
        write_file(
            &dir.join(TRUST_DOMAIN_FILE),
            &format!("{trust_domain}\n"),
            0o644,
        )?;
        tracing::info!(dir = %dir.display(), trust_domain, "created trust anchor and issuer");
        Ca::load(dir)
    }

    /// Loads the issuer from `dir` (the anchor certificate, the issuer
    /// certificate and key; never the anchor key).
    pub fn load(dir: &Path) -> Result<Ca, CaError> {
        let td_path = dir.join(TRUST_DOMAIN_FILE);
        let trust_domain = read(&td_path)?.trim().to_owned();
        check_trust_domain(&trust_domain).map_err(|_| CaError::Invalid {
            path: td_path.clone(),
            reason: format!("{trust_domain:?} is not a trust domain"),
        })?;
        let anchor_path = dir.join(ANCHOR_CERT);
        let anchor_pem = read(&anchor_path)?;
        let anchor = CertificateDer::from_pem_slice(anchor_pem.as_bytes())
            .map_err(|e| invalid(&anchor_path, e))?;
        let issuer_path = dir.join(ISSUER_CERT);
        let issuer_pem = read(&issuer_path)?;
        let issuer_cert = CertificateDer::from_pem_slice(issuer_pem.as_bytes())
            .map_err(|e| invalid(&issuer_path, e))?;
        let key_path = dir.join(ISSUER_KEY);
        let key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| invalid(&key_path, e))?;

        let (_, parsed) = x509_parser::parse_x509_certificate(&issuer_cert)
            .map_err(|e| invalid(&issuer_path, e))?;
        if parsed.tbs_certificate.subject_pki.raw != key.subject_public_key_info().as_slice() {
            return Err(CaError::Invalid {
                path: key_path,
                reason: format!("is not the key of {}", issuer_path.display()),
            });
        }
        let issuer_not_after = unix_to_system(parsed.validity().not_after.timestamp());
        verify_issued_by(&issuer_cert, &anchor).map_err(|reason| CaError::Invalid {
            path: issuer_path.clone(),
            reason,
        })?;
        let issuer = rcgen::Issuer::from_ca_cert_der(&issuer_cert, key)
            .map_err(|e| invalid(&issuer_path, e))?;
        Ok(Ca {
            trust_domain,
            anchor,
            anchor_pem,
            issuer_cert,
            issuer_pem,
            issuer,
            issuer_not_after,
        })
    }

    /// Loads the CA in `dir`, creating it first when the directory holds none
    /// (what the demo does on its first start). An existing CA must be for
    /// `trust_domain`.
    pub fn load_or_init(dir: &Path, trust_domain: &str) -> Result<Ca, CaError> {
        if !dir.join(ISSUER_CERT).exists() {
            return Ca::init(dir, trust_domain);
        }
        let ca = Ca::load(dir)?;
        if ca.trust_domain != trust_domain {
            return Err(CaError::TrustDomainMismatch {
                dir: dir.to_owned(),
                found: ca.trust_domain,
                wanted: trust_domain.to_owned(),
            });
        }
        Ok(ca)
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The trust anchor certificate.
    pub fn anchor(&self) -> &CertificateDer<'static> {
        &self.anchor
    }

    pub fn anchor_pem(&self) -> &str {
        &self.anchor_pem
    }

    /// The issuer's own certificate (the intermediate in every chain it signs).
    pub fn issuer_cert(&self) -> &CertificateDer<'static> {
        &self.issuer_cert
    }

    pub fn issuer_pem(&self) -> &str {
        &self.issuer_pem
    }

    pub(crate) fn signer(&self) -> &rcgen::Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// No certificate it signs may outlive the issuer's own.
    pub fn issuer_not_after(&self) -> SystemTime {
        self.issuer_not_after
    }
}

fn ca_params(common_name: &str, now: SystemTime, lifetime: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Weir");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + lifetime).into();
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = true;
    params
}

/// Checks that `cert` carries a valid signature of `anchor`'s key, so a
/// directory with files of two different CAs is refused at load.
fn verify_issued_by(cert: &CertificateDer<'_>, anchor: &CertificateDer<'_>) -> Result<(), String> {
    let (_, child) = x509_parser::parse_x509_certificate(cert).map_err(|e| e.to_string())?;
    let (_, parent) = x509_parser::parse_x509_certificate(anchor).map_err(|e| e.to_string())?;
    child
        .verify_signature(Some(parent.public_key()))
        .map_err(|_| format!("is not signed by the trust anchor ({ANCHOR_CERT})"))
}

pub(crate) fn check_trust_domain(td: &str) -> Result<(), CaError> {
    proxy_core::identity::SpiffeId::for_workload(td, "ns", "sa")
        .map(|_| ())
        .map_err(|_| CaError::TrustDomain(td.to_owned()))
}

pub(crate) fn unix_to_system(secs: i64) -> SystemTime {
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn io(path: &Path, source: std::io::Error) -> CaError {
    CaError::Io {
        path: path.to_owned(),
        source,
    }
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> CaError {
    CaError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| io(path, source))
}

/// Writes a new file with `mode` from the start (a key is never readable by
/// others, not even for a moment).
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), CaError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| io(path, source))?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|source| io(path, source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    pub(crate) fn scratch(tag: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir().join(format!("weir-ca-{tag}-{}-{nanos}", std::process::id()))
    }

    #[test]
    fn init_writes_keys_private_and_loads_back() {
        let dir = scratch("init");
        let ca = Ca::init(&dir, "weir.local").unwrap();
        assert_eq!(ca.trust_domain(), "weir.local");
        for key in [ANCHOR_KEY, ISSUER_KEY] {
            let mode = std::fs::metadata(dir.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        let again = Ca::load_or_init(&dir, "weir.local").unwrap();
        assert_eq!(again.anchor(), ca.anchor());
        assert!(matches!(
            Ca::init(&dir, "weir.local"),
            Err(CaError::Exists(_))
        ));
        assert!(matches!(
            Ca::load_or_init(&dir, "other.local"),
            Err(CaError::TrustDomainMismatch { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_an_issuer_key_of_another_ca() {
        let (a, b) = (scratch("a"), scratch("b"));
        Ca::init(&a, "weir.local").unwrap();
        Ca::init(&b, "weir.local").unwrap();
        std::fs::copy(b.join(ISSUER_KEY), a.join(ISSUER_KEY)).unwrap();
        let err = Ca::load(&a).unwrap_err();
        assert!(err.to_string().contains("is not the key"), "{err}");
        // Certificate and key of b, anchor of a: not signed by the anchor.
        std::fs::copy(b.join(ISSUER_CERT), a.join(ISSUER_CERT)).unwrap();
        let err = Ca::load(&a).unwrap_err();
        assert!(
            err.to_string().contains("not signed by the trust anchor"),
            "{err}"
        );
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }

    #[test]
    fn refuses_bad_trust_domains() {
        let dir = scratch("td");
        assert!(matches!(
            Ca::init(&dir, "Weir.Local"),
            Err(CaError::TrustDomain(_))
        ));
    }
}
