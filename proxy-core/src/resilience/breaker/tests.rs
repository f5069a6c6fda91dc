use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};

use super::*;
use crate::resilience::BoxError;

fn addr(n: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], n))
}

fn settings() -> BreakerSettings {
    BreakerSettings {
        consecutive_failures: Some(3),
        success_rate: None,
        ejection_base: Duration::from_secs(1),
        backoff: EjectionBackoff::Linear,
        ejection_max: Duration::from_secs(10),
        max_percent: 100,
    }
}

fn fail(h: &EndpointHealth, n: u32) {
    for _ in 0..n {
        let a = h.admit();
        h.record(a, false);
    }
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_eject_and_probe_restores() {
    let d = OutlierDetector::new(settings());
    let h = d.endpoint(addr(1));
    fail(&h, 2);
    h.record(Admission::Allow, true); // a success resets the streak
    fail(&h, 2);
    assert_eq!(h.state(), BreakerState::Closed);
    fail(&h, 1);
    assert_eq!(h.state(), BreakerState::Open);
    assert_eq!(h.admit(), Admission::Reject);
    assert!(d.all_unavailable());

    tokio::time::advance(Duration::from_millis(1001)).await;
    assert_eq!(h.state(), BreakerState::HalfOpen);
    assert!(h.is_available());
    assert_eq!(h.admit(), Admission::Probe);
    // only one probe at a time
    assert!(!h.is_available());
    assert_eq!(h.admit(), Admission::Reject);
    h.record(Admission::Probe, true);
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!(d.ejected(), 0);
}

#[tokio::test(start_paused = true)]
async fn failed_probe_ejects_longer_up_to_max() {
    let d = OutlierDetector::new(settings());
    let h = d.endpoint(addr(1));
    fail(&h, 3);
    for n in 2..=12u64 {
        // the current ejection lasts (n-1) s, capped at 10 s
        tokio::time::advance(Duration::from_secs((n - 1).min(10)) + Duration::from_millis(1)).await;
        assert_eq!(h.admit(), Admission::Probe, "probe after ejection {n}");
        h.record(Admission::Probe, false);
        let snap = h.snapshot();
        assert_eq!(snap.state, BreakerState::Open);
        assert_eq!(snap.ejected_for_ms, n.min(10) * 1000);
    }
}

#[tokio::test(start_paused = true)]
async fn success_rate_ejects_with_min_requests() {
    let d = OutlierDetector::new(BreakerSettings {
        consecutive_failures: None,
        success_rate: Some(SuccessRate {
            threshold: 0.8,
            window: Duration::from_secs(10),
            min_requests: 20,
        }),
        ..settings()
    });
    let h = d.endpoint(addr(1));
    // 50 % success, but below min_requests
    for i in 0..18 {
        h.record(Admission::Allow, i % 2 == 0);
    }
    assert_eq!(h.state(), BreakerState::Closed);
    h.record(Admission::Allow, true);
    h.record(Admission::Allow, false);
    assert_eq!(h.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn never_more_than_max_percent_but_at_least_one() {
    let d = OutlierDetector::new(BreakerSettings {
        max_percent: 50,
        ..settings()
    });
    let hs = d.sync(&[addr(1), addr(2), addr(3), addr(4)]);
    for h in &hs {
        fail(h, 5);
    }
    assert_eq!(d.ejected(), 2);
    assert!(!d.all_unavailable());

    let single = OutlierDetector::new(BreakerSettings {
        max_percent: 10,
        ..settings()
    });
    let h = single.endpoint(addr(9));
    fail(&h, 3);
    assert_eq!(h.state(), BreakerState::Open);
    assert!(single.all_unavailable());
}

#[tokio::test(start_paused = true)]
async fn sync_retires_removed_endpoints() {
    let d = OutlierDetector::new(settings());
    let hs = d.sync(&[addr(1), addr(2)]);
    fail(&hs[0], 3);
    assert_eq!(d.ejected(), 1);
    d.sync(&[addr(2), addr(3)]);
    assert_eq!(d.ejected(), 0);
    assert_eq!(d.snapshot().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn hook_sees_transitions() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let d = OutlierDetector::with_hook(
        settings(),
        Arc::new(move |a, from, to| s.lock().unwrap().push((a, from, to))),
    );
    let h = d.endpoint(addr(1));
    fail(&h, 3);
    tokio::time::advance(Duration::from_secs(2)).await;
    let a = h.admit();
    h.record(a, true);
    use BreakerState::*;
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[
            (addr(1), Closed, Open),
            (addr(1), Open, HalfOpen),
            (addr(1), HalfOpen, Closed)
        ]
    );
}

fn upstream(
    status: Arc<Mutex<u16>>,
) -> impl tower::Service<
    (),
    Response = Response<Full<Bytes>>,
    Error = BoxError,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, BoxError>>,
> + Clone {
    service_fn(move |()| {
        let s = *status.lock().unwrap();
        async move {
            Ok::<_, BoxError>(
                Response::builder()
                    .status(s)
                    .body(Full::new(Bytes::from_static(b"b")))
                    .unwrap(),
            )
        }
    })
}

#[tokio::test(start_paused = true)]
async fn service_records_statuses_and_fails_fast_when_open() {
    let d = OutlierDetector::new(settings());
    let status = Arc::new(Mutex::new(503));
    let svc = BreakerLayer::new(d.endpoint(addr(1))).layer(upstream(status.clone()));
    for _ in 0..3 {
        let r = svc.clone().oneshot(()).await.unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let err = svc.clone().oneshot(()).await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
    assert_eq!(
        crate::resilience::error_status(&*err),
        StatusCode::SERVICE_UNAVAILABLE
    );

    *status.lock().unwrap() = 200;
    tokio::time::advance(Duration::from_millis(1001)).await;
    let r = svc.clone().oneshot(()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(d.snapshot()[0].state, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn grpc_trailers_decide_when_the_body_ends() {
    let d = OutlierDetector::new(BreakerSettings {
        consecutive_failures: Some(1),
        ..settings()
    });
    let h = d.endpoint(addr(1));
    let svc = BreakerLayer::new(h.clone()).layer(service_fn(|()| async {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", 13.into());
        let body =
            Full::new(Bytes::from_static(b"m")).with_trailers(async move { Some(Ok(trailers)) });
        Ok::<_, BoxError>(
            Response::builder()
                .header("content-type", "application/grpc")
                .body(body)
                .unwrap(),
        )
    }));
    let resp = svc.oneshot(()).await.unwrap();
    assert_eq!(h.state(), BreakerState::Closed, "undecided until trailers");
    resp.into_body().collect().await.unwrap();
    assert_eq!(h.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn call_dropped_by_its_caller_records_no_outcome() {
    // A client that goes away mid-call (wrk stopping, a user closing a tab)
    // must not eject a healthy endpoint.
    let d = OutlierDetector::new(BreakerSettings {
        consecutive_failures: Some(1),
        ..settings()
    });
    let h = d.endpoint(addr(1));
    let svc = BreakerLayer::new(h.clone()).layer(service_fn(|()| async {
        std::future::pending::<Result<Response<Full<Bytes>>, BoxError>>().await
    }));
    let r = tokio::time::timeout(Duration::from_millis(10), svc.oneshot(())).await;
    assert!(r.is_err());
    assert_eq!(h.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn hung_call_cut_by_the_per_try_timeout_counts_as_failure() {
    let d = OutlierDetector::new(BreakerSettings {
        consecutive_failures: Some(1),
        ..settings()
    });
    let h = d.endpoint(addr(1));
    let hung = service_fn(|()| async {
        std::future::pending::<Result<Response<Full<Bytes>>, BoxError>>().await
    });
    let per_try = crate::resilience::TimeoutLayer::new(
        crate::resilience::TimeoutKind::PerTry,
        Duration::from_millis(10),
    );
    let svc = BreakerLayer::new(h.clone()).layer(per_try.layer(hung));
    assert!(svc.oneshot(()).await.is_err());
    assert_eq!(h.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn passive_observation_ejects_doubles_and_restores() {
    let d = OutlierDetector::new(BreakerSettings::passive(
        Duration::from_secs(1),
        Duration::from_secs(3),
    ));
    let h = d.endpoint(addr(1));
    h.observe(false);
    assert_eq!(h.state(), BreakerState::Open);
    assert_eq!(h.ejected_for(), Duration::from_secs(1));
    h.observe(false); // while ejected, outcomes change nothing
    assert_eq!(h.ejected_for(), Duration::from_secs(1));
    tokio::time::advance(Duration::from_millis(1001)).await;
    assert!(h.is_available(), "no probe slot: traffic resumes");
    h.observe(false);
    assert_eq!(h.ejected_for(), Duration::from_secs(2), "doubled");
    tokio::time::advance(Duration::from_millis(2001)).await;
    h.observe(false);
    assert_eq!(h.ejected_for(), Duration::from_secs(3), "capped at max");
    tokio::time::advance(Duration::from_millis(3001)).await;
    h.observe(true);
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!(d.ejected(), 0);
}

#[test]
fn backoff_times() {
    let (b, m) = (Duration::from_secs(1), Duration::from_secs(60));
    let lin: Vec<_> = (1..=4)
        .map(|n| EjectionBackoff::Linear.ejection_time(n, b, m).as_secs())
        .collect();
    let dbl: Vec<_> = (1..=4)
        .map(|n| EjectionBackoff::Doubling.ejection_time(n, b, m).as_secs())
        .collect();
    assert_eq!(lin, [1, 2, 3, 4]);
    assert_eq!(dbl, [1, 2, 4, 8]);
    assert_eq!(EjectionBackoff::Doubling.ejection_time(40, b, m), m);
}
