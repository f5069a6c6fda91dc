//! The cert-manager files source: reload on change, keep the old
//! credentials when the files are broken.

mod support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use proxy_core::identity::{SpiffeId, credentials_channel};
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use support::Scratch;
use weir_identity::ca::Ca;
use weir_identity::sign::sign_csr;
use weir_identity::{FileSource, IdentityMetrics};

const BOUND: Duration = Duration::from_secs(30);

/// Writes a certificate for `sa` the way cert-manager lays it out.
fn write_secret(ca: &Ca, dir: &Path, sa: &str) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let id = SpiffeId::for_workload("weir.local", "default", sa).unwrap();
    let issued = sign_csr(ca, &csr, &id, Duration::from_secs(3600), SystemTime::now()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("tls.crt"), issued.chain_pem).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.anchor_pem()).unwrap();
}

#[tokio::test]
async fn reloads_on_change_and_keeps_the_old_credentials_when_the_files_break() {
    let scratch = Scratch::new("files");
    let ca = Ca::init(&scratch.0.join("ca"), "weir.local").unwrap();
    let secret = scratch.0.join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    write_secret(&ca, &secret, "catalog");

    let (tx, mut watch) = credentials_channel();
    let metrics = IdentityMetrics::default();
    let (stop, shutdown) = proxy_core::shutdown::channel();
    FileSource::in_dir(&secret)
        .watch(tx, metrics.clone(), shutdown)
        .unwrap();
    let first = watch.borrow_and_update().clone().expect("loaded at start");
    assert_eq!(
        first.id.as_str(),
        "spiffe://weir.local/ns/default/sa/catalog"
    );
    assert_eq!(first.trust_anchors, vec![ca.anchor().clone()]);

    // A rotation: new key and certificate.
    write_secret(&ca, &secret, "catalog");
    tokio::time::timeout(BOUND, watch.changed())
        .await
        .unwrap()
        .unwrap();
    let second = watch.borrow_and_update().clone().unwrap();
    assert_ne!(second.chain[0], first.chain[0]);
    assert_eq!(second.id, first.id);

    // A broken certificate file: counted and logged, the old one stays.
    let failures = metrics.failures.get();
    std::fs::write(
        secret.join("tls.crt"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let deadline = Instant::now() + BOUND;
    while metrics.failures.get() == failures {
        assert!(Instant::now() < deadline, "the broken file was never read");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!watch.has_changed().unwrap());
    assert_eq!(watch.borrow().as_ref().unwrap().chain[0], second.chain[0]);

    // A certificate of another CA is refused the same way.
    let other = Ca::init(&scratch.0.join("other-ca"), "weir.local").unwrap();
    let failures = metrics.failures.get();
    let foreign = scratch.0.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    write_secret(&other, &foreign, "catalog");
    std::fs::copy(foreign.join("tls.key"), secret.join("tls.key")).unwrap();
    std::fs::copy(foreign.join("tls.crt"), secret.join("tls.crt")).unwrap();
    let deadline = Instant::now() + BOUND;
    while metrics.failures.get() == failures {
        assert!(
            Instant::now() < deadline,
            "the foreign certificate was never read"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!watch.has_changed().unwrap());

    // Whole again: published.
    write_secret(&ca, &secret, "order");
    tokio::time::timeout(BOUND, watch.changed())
        .await
        .unwrap()
        .unwrap();
    let third = watch.borrow_and_update().clone().unwrap();
    assert_eq!(third.id.as_str(), "spiffe://weir.local/ns/default/sa/order");
    stop.trigger();
}

#[test]
fn refuses_to_start_on_unusable_files() {
    let scratch = Scratch::new("files-bad");
    let ca = Ca::init(&scratch.0.join("ca"), "weir.local").unwrap();
    write_secret(&ca, &scratch.0, "catalog");
    // The key of another certificate.
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(scratch.0.join("tls.key"), key.serialize_pem()).unwrap();
    let err = FileSource::in_dir(&scratch.0).load().unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    std::fs::remove_file(scratch.0.join("ca.crt")).unwrap();
    assert!(FileSource::in_dir(&scratch.0).load().is_err());
}

/// The way the kubelet updates a Secret volume: the files are symlinks
/// through `..data`, which is swapped in one rename to a new directory.
#[tokio::test]
async fn follows_a_kubernetes_secret_volume_update() {
    use std::os::unix::fs::symlink;
    let scratch = Scratch::new("files-k8s");
    let ca = Ca::init(&scratch.0.join("ca"), "weir.local").unwrap();
    let vol = scratch.0.join("volume");
    let v1 = vol.join("..2026_12_07_20_00_00.000000001");
    std::fs::create_dir_all(&v1).unwrap();
    write_secret(&ca, &v1, "catalog");
    symlink(v1.file_name().unwrap(), vol.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key", "ca.crt"] {
        symlink(Path::new("..data").join(f), vol.join(f)).unwrap();
    }

    let (tx, mut watch) = credentials_channel();
    let (stop, shutdown) = proxy_core::shutdown::channel();
    FileSource::in_dir(&vol)
        .watch(tx, IdentityMetrics::default(), shutdown)
        .unwrap();
    let first = watch.borrow_and_update().clone().unwrap();

    let v2 = vol.join("..2026_12_07_21_00_00.000000002");
    std::fs::create_dir_all(&v2).unwrap();
    write_secret(&ca, &v2, "catalog");
    symlink(v2.file_name().unwrap(), vol.join("..data_tmp")).unwrap();
    std::fs::rename(vol.join("..data_tmp"), vol.join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();

    tokio::time::timeout(BOUND, watch.changed())
        .await
        .unwrap()
        .unwrap();
    let second = watch.borrow_and_update().clone().unwrap();
    assert_ne!(second.chain[0], first.chain[0]);
    stop.trigger();
}
