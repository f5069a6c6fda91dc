use std::time::Duration;

use tower::{ServiceExt, service_fn};

use super::*;

#[tokio::test(start_paused = true)]
async fn fires_after_deadline_with_kind() {
    let svc = TimeoutLayer::new(TimeoutKind::PerTry, Duration::from_millis(100)).layer(service_fn(
        |_: ()| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, BoxError>("late")
        },
    ));
    let err = svc.oneshot(()).await.unwrap_err();
    let t = err.downcast_ref::<TimeoutError>().expect("a TimeoutError");
    assert_eq!(t.kind(), TimeoutKind::PerTry);
    assert_eq!(t.after(), Duration::from_millis(100));
    assert_eq!(
        crate::resilience::error_status(&*err),
        http::StatusCode::GATEWAY_TIMEOUT
    );
}

#[tokio::test(start_paused = true)]
async fn passes_fast_responses_and_errors() {
    let svc = Timeout::new(
        service_fn(|x: u32| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if x == 0 {
                Err::<u32, BoxError>("boom".into())
            } else {
                Ok(x)
            }
        }),
        TimeoutKind::Overall,
        Duration::from_millis(100),
    );
    assert_eq!(svc.clone().oneshot(7).await.unwrap(), 7);
    let err = svc.oneshot(0).await.unwrap_err();
    assert!(err.downcast_ref::<TimeoutError>().is_none());
    assert_eq!(err.to_string(), "boom");
}

#[tokio::test(start_paused = true)]
async fn an_unset_deadline_never_fires() {
    let svc = TimeoutLayer::optional(TimeoutKind::Overall, None).layer(service_fn(|()| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, BoxError>(7)
    }));
    assert_eq!(svc.oneshot(()).await.unwrap(), 7);
}
