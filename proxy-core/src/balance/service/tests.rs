use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tower::ServiceExt;

use super::*;
use crate::config::LoadBalancerKind;

fn addr(n: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], n))
}

/// A balancer whose endpoint services answer with their port, and the count
/// of endpoint services built.
fn balancer(
    group: &Arc<EndpointGroup>,
) -> (
    Balance<tower::util::BoxCloneSyncService<(), u16, BoxError>>,
    Arc<AtomicUsize>,
) {
    let built = Arc::new(AtomicUsize::new(0));
    let counter = built.clone();
    let make: MakeEndpoint<_> = Box::new(move |ep: &Arc<Endpoint>| {
        counter.fetch_add(1, Ordering::Relaxed);
        let port = ep.addr.port();
        tower::util::BoxCloneSyncService::new(tower::service_fn(move |()| async move {
            Ok::<_, BoxError>(port)
        }))
    });
    (Balance::new(group.clone(), make), built)
}

#[tokio::test]
async fn endpoint_stacks_are_built_once_not_per_call() {
    let group = EndpointGroup::fixed("svc", &[addr(1), addr(2)], LoadBalancerKind::P2cEwma);
    let (svc, built) = balancer(&group);
    assert_eq!(built.load(Ordering::Relaxed), 2);
    for _ in 0..100 {
        let port = svc.clone().oneshot(()).await.unwrap();
        assert!(port == 1 || port == 2);
    }
    assert_eq!(built.load(Ordering::Relaxed), 2, "no call built anything");
}

#[tokio::test]
async fn a_changed_set_builds_only_the_new_endpoints() {
    let group = EndpointGroup::fixed("svc", &[addr(1), addr(2)], LoadBalancerKind::RoundRobin);
    let (svc, built) = balancer(&group);
    group.set_addresses(&[addr(2), addr(3)]);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        seen.insert(svc.clone().oneshot(()).await.unwrap());
    }
    assert_eq!(seen, [2, 3].into());
    assert_eq!(
        built.load(Ordering::Relaxed),
        3,
        "endpoint 2's stack was kept"
    );
}

#[tokio::test(start_paused = true)]
async fn ejected_endpoints_are_skipped_and_none_left_is_circuit_open() {
    let group = EndpointGroup::new(super::super::GroupOptions {
        name: "svc".into(),
        endpoints: vec![
            crate::config::EndpointAddr::Static(addr(1)),
            crate::config::EndpointAddr::Static(addr(2)),
        ],
        load_balancer: LoadBalancerKind::P2c,
        health_check: None,
        dns_refresh: Duration::from_secs(5),
        ejection: crate::resilience::BreakerSettings::passive(
            Duration::from_secs(1),
            Duration::from_secs(1),
        ),
        ejection_hook: None,
    });
    let (svc, _) = balancer(&group);
    group.endpoints()[0].record_failure();
    for _ in 0..20 {
        assert_eq!(svc.clone().oneshot(()).await.unwrap(), 2);
    }
    group.endpoints()[1].record_failure();
    let err = svc.clone().oneshot(()).await.unwrap_err();
    assert!(err.is::<CircuitOpen>(), "{err}");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(svc.clone().oneshot(()).await.is_ok(), "ejection ran out");
}

#[tokio::test]
async fn an_empty_set_fails_with_no_endpoints() {
    let group = EndpointGroup::fixed("svc", &[], LoadBalancerKind::P2c);
    let (svc, _) = balancer(&group);
    let err = svc.oneshot(()).await.unwrap_err();
    assert!(err.is::<NoEndpoints>(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_call_counts_as_load_until_its_head() {
    let group = EndpointGroup::fixed("svc", &[addr(1)], LoadBalancerKind::P2c);
    let make: MakeEndpoint<_> = Box::new(|_: &Arc<Endpoint>| {
        tower::service_fn(|()| async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok::<_, BoxError>(())
        })
    });
    let svc = Balance::new(group.clone(), make);
    let call = tokio::spawn(svc.oneshot(()));
    tokio::task::yield_now().await;
    assert_eq!(group.endpoints()[0].in_flight(), 1);
    call.await.unwrap().unwrap();
    assert_eq!(group.endpoints()[0].in_flight(), 0);
    assert!(group.endpoints()[0].latency_ns() >= 30_000_000.0);
}
