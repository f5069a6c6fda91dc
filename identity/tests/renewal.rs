//! Rotation: the client renews before expiry, keeps its certificate while
//! the issuer is down, and recovers when it returns. Renewals are observed
//! as changes of the credentials watch, never by sleeping.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use proxy_core::identity::{Credentials, CredentialsWatch, credentials_channel};
use support::{Scratch, bootstrap, local, mutual_tls, start_issuer, token};
use weir_identity::client::{RenewPolicy, run};
use weir_identity::{IdentityClient, IdentityMetrics, TokenSource};

const BOUND: Duration = Duration::from_secs(60);

async fn next(watch: &mut CredentialsWatch) -> Arc<Credentials> {
    tokio::time::timeout(BOUND, watch.changed())
        .await
        .expect("no new credentials in time")
        .expect("the client stopped");
    watch.borrow_and_update().clone().expect("credentials")
}

fn fast_retries() -> RenewPolicy {
    RenewPolicy {
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        ..RenewPolicy::default()
    }
}

#[tokio::test]
async fn renews_before_the_certificate_expires() {
    let dir = Scratch::new("renew");
    // 6 s certificates: renewal is due after about 4.2 s.
    let issuer = start_issuer(
        &dir.0,
        bootstrap(&["catalog"]),
        Duration::from_secs(6),
        local(),
    )
    .await;
    let client = IdentityClient::new(
        &issuer.url,
        &issuer.anchors,
        TokenSource::Value(token("catalog")),
        None,
    )
    .unwrap();
    let (tx, mut watch) = credentials_channel();
    let metrics = IdentityMetrics::default();
    let (stop, shutdown) = proxy_core::shutdown::channel();
    let task = tokio::spawn(run(client, fast_retries(), tx, metrics.clone(), shutdown));

    let first = next(&mut watch).await;
    let second = next(&mut watch).await;
    let arrived = SystemTime::now();
    assert_ne!(second.chain[0], first.chain[0]);
    assert_eq!(second.id, first.id);
    assert!(second.not_after > first.not_after);
    // The new certificate came while the old one was still valid: no gap.
    assert!(arrived < first.not_after, "renewed only after expiry");
    // Both work: connections made with the old one and the new one
    // interoperate during the overlap.
    mutual_tls(&first, &second).await.unwrap();
    assert_eq!(metrics.renewals.get(), 2);
    assert_eq!(metrics.failures.get(), 0);

    stop.trigger();
    task.await.unwrap();
    issuer.shut_down().await;
}

#[tokio::test]
async fn keeps_the_old_certificate_while_the_issuer_is_down_and_recovers() {
    let dir = Scratch::new("outage");
    let issuer = start_issuer(
        &dir.0,
        bootstrap(&["catalog"]),
        Duration::from_secs(2),
        local(),
    )
    .await;
    let client = IdentityClient::new(
        &issuer.url,
        &issuer.anchors,
        TokenSource::Value(token("catalog")),
        None,
    )
    .unwrap();
    let (tx, mut watch) = credentials_channel();
    let metrics = IdentityMetrics::default();
    let (stop, shutdown) = proxy_core::shutdown::channel();
    let task = tokio::spawn(run(client, fast_retries(), tx, metrics.clone(), shutdown));

    let first = next(&mut watch).await;
    let addr = issuer.shut_down().await;

    // No event marks a failed attempt: poll the counter, bounded.
    let deadline = Instant::now() + BOUND;
    while metrics.failures.get() < 2 {
        assert!(Instant::now() < deadline, "the client never retried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kept = watch.borrow().clone().expect("credentials");
    assert_eq!(
        kept.chain[0], first.chain[0],
        "the old certificate stays published"
    );
    assert!(!watch.has_changed().unwrap());

    // The issuer comes back on the same address with the same CA.
    let back = start_issuer(
        &dir.0,
        bootstrap(&["catalog"]),
        Duration::from_secs(2),
        addr,
    )
    .await;
    let renewed = next(&mut watch).await;
    assert_ne!(renewed.chain[0], first.chain[0]);
    assert_eq!(renewed.id, first.id);
    assert!(metrics.renewals.get() >= 2);

    stop.trigger();
    task.await.unwrap();
    back.shut_down().await;
}
