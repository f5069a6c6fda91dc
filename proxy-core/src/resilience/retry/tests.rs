use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use tower::{Layer, ServiceExt, service_fn};

use super::*;
use crate::resilience::budget::BudgetSettings;
use crate::resilience::timeout::{TimeoutKind, TimeoutLayer};

type Resp = Response<BoxBody<Bytes, BoxError>>;

/// A body and the attempt number an upstream saw.
type Seen = (Bytes, Option<u32>);

/// What a scripted upstream does on one call.
enum Step {
    Status(u16),
    Refused,
    Hang,
    GrpcHeader(u32),
    GrpcTrailersFirst(u32),
    GrpcDataFirst(u32),
}

fn full(s: &'static str) -> BoxBody<Bytes, BoxError> {
    Full::new(Bytes::from_static(s.as_bytes()))
        .map_err(|never| match never {})
        .boxed()
}

fn grpc_trailers(code: u32) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", code.into());
    t
}

/// A scripted upstream: records every body and attempt it saw.
#[derive(Clone, Default)]
struct Upstream {
    script: Arc<Mutex<VecDeque<Step>>>,
    calls: Arc<AtomicU32>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    fn new(steps: Vec<Step>) -> Self {
        Upstream {
            script: Arc::new(Mutex::new(steps.into())),
            ..Default::default()
        }
    }

    fn service(
        &self,
    ) -> impl tower::Service<
        Request<ReplayBody<Full<Bytes>>>,
        Response = Resp,
        Error = BoxError,
        Future = impl Future<Output = Result<Resp, BoxError>> + Send,
    > + Clone
    + Send
    + 'static {
        let this = self.clone();
        service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
            let this = this.clone();
            async move {
                this.calls.fetch_add(1, Ordering::SeqCst);
                let attempt = req.extensions().get::<Attempt>().map(|a| a.number);
                let body = req.into_body().collect().await?.to_bytes();
                this.seen.lock().unwrap().push((body, attempt));
                let step = this
                    .script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or(Step::Status(200));
                let grpc = |b: BoxBody<Bytes, BoxError>| {
                    Response::builder()
                        .header("content-type", "application/grpc")
                        .body(b)
                        .unwrap()
                };
                Ok::<Resp, BoxError>(match step {
                    Step::Status(s) => Response::builder().status(s).body(full("x")).unwrap(),
                    Step::Refused => {
                        return Err(
                            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into()
                        );
                    }
                    Step::Hang => std::future::pending().await,
                    Step::GrpcHeader(c) => {
                        let mut r = grpc(full(""));
                        r.headers_mut().insert("grpc-status", c.into());
                        r
                    }
                    Step::GrpcTrailersFirst(c) => grpc(
                        StreamBody::new(futures_util::stream::iter(vec![Ok::<_, BoxError>(
                            Frame::trailers(grpc_trailers(c)),
                        )]))
                        .boxed(),
                    ),
                    Step::GrpcDataFirst(c) => grpc(
                        StreamBody::new(futures_util::stream::iter(vec![
                            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"msg"))),
                            Ok(Frame::trailers(grpc_trailers(c))),
                        ]))
                        .boxed(),
                    ),
                })
            }
        })
    }
}

fn generous_budget() -> Arc<RetryBudget> {
    Arc::new(RetryBudget::new(BudgetSettings {
        ratio: 1.0,
        min_per_second: 100,
        window: Duration::from_secs(10),
    }))
}

fn req(method: Method, body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("http://svc/")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn attempts(r: &Response<impl Sized>) -> &str {
    r.headers()[ATTEMPTS_HEADER].to_str().unwrap()
}

#[tokio::test(start_paused = true)]
async fn retries_503_and_replays_the_body() {
    let up = Upstream::new(vec![
        Step::Status(503),
        Step::Status(503),
        Step::Status(200),
    ]);
    let svc = RetryLayer::new(RetryPolicy::default(), generous_budget()).layer(up.service());
    let resp = svc.oneshot(req(Method::PUT, "payload")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(attempts(&resp), "3");
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (Bytes::from_static(b"payload"), Some(1)),
            (Bytes::from_static(b"payload"), Some(2)),
            (Bytes::from_static(b"payload"), Some(3)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts_with_last_response() {
    let up = Upstream::new((0..5).map(|_| Step::Status(502)).collect());
    let svc = RetryLayer::new(RetryPolicy::default(), generous_budget()).layer(up.service());
    let resp = svc.oneshot(req(Method::GET, "")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(attempts(&resp), "3");
    assert_eq!(up.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn never_retries_post_on_status_unless_opted_in() {
    let up = Upstream::new(vec![Step::Status(503), Step::Status(200)]);
    let svc = RetryLayer::new(RetryPolicy::default(), generous_budget()).layer(up.service());
    let resp = svc.oneshot(req(Method::POST, "order")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(up.calls.load(Ordering::SeqCst), 1);

    let up = Upstream::new(vec![Step::Status(503), Step::Status(200)]);
    let policy = RetryPolicy {
        non_idempotent: true,
        ..RetryPolicy::default()
    };
    let svc = RetryLayer::new(policy, generous_budget()).layer(up.service());
    let resp = svc.oneshot(req(Method::POST, "order")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(up.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn connect_errors_are_retried_even_for_post() {
    let up = Upstream::new(vec![Step::Refused, Step::Status(201)]);
    let svc = RetryLayer::new(RetryPolicy::default(), generous_budget()).layer(up.service());
    let resp = svc.oneshot(req(Method::POST, "x")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(attempts(&resp), "2");
}

#[tokio::test(start_paused = true)]
async fn final_error_reports_attempts() {
    let up = Upstream::new((0..3).map(|_| Step::Refused).collect());
    let svc = RetryLayer::new(RetryPolicy::default(), generous_budget()).layer(up.service());
    let err = svc.oneshot(req(Method::GET, "")).await.unwrap_err();
    let ex = err.downcast_ref::<RetriesExhausted>().expect("wrapped");
    assert_eq!(ex.attempts, 3);
    assert_eq!(
        crate::resilience::classify::classify_error(&*err),
        crate::resilience::ErrorClass::Connect
    );
}

#[tokio::test(start_paused = true)]
async fn empty_budget_stops_retries_and_reports_it() {
    let budget = Arc::new(RetryBudget::new(BudgetSettings {
        ratio: 0.0,
        min_per_second: 0,
        window: Duration::from_secs(10),
    }));
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let up = Upstream::new(vec![Step::Status(503), Step::Status(200)]);
    let svc = RetryLayer::new(RetryPolicy::default(), budget)
        .with_hook(Arc::new(move |e: &RetryEvent| ev.lock().unwrap().push(*e)))
        .layer(up.service());
    let resp = svc.oneshot(req(Method::GET, "")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(up.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        events.lock().unwrap().as_slice(),
        &[RetryEvent::BudgetExhausted {
            attempt: 1,
            reason: RetryReason::Status(StatusCode::SERVICE_UNAVAILABLE)
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn large_bodies_stream_once_unretried() {
    let up = Upstream::new(vec![Step::Status(503), Step::Status(200)]);
    let policy = RetryPolicy {
        max_replay_body: 4,
        ..RetryPolicy::default()
    };
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let svc = RetryLayer::new(policy, generous_budget())
        .with_hook(Arc::new(move |e: &RetryEvent| ev.lock().unwrap().push(*e)))
        .layer(up.service());
    let resp = svc.oneshot(req(Method::PUT, "too large")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(attempts(&resp), "1");
    assert_eq!(
        up.seen.lock().unwrap()[0].0,
        Bytes::from_static(b"too large")
    );
    assert_eq!(
        events.lock().unwrap().as_slice(),
        &[RetryEvent::NotReplayable]
    );
}

#[tokio::test(start_paused = true)]
async fn grpc_unavailable_in_headers_or_first_trailers_is_retried() {
    let up = Upstream::new(vec![
        Step::GrpcHeader(14),
        Step::GrpcTrailersFirst(14),
        Step::GrpcHeader(0),
    ]);
    let svc = RetryLayer::new(RetryPolicy::default(), generous_budget()).layer(up.service());
    let resp = svc.oneshot(req(Method::GET, "")).await.unwrap();
    assert_eq!(attempts(&resp), "3");
    assert_eq!(resp.headers()["grpc-status"], "0");
}

#[tokio::test(start_paused = true)]
async fn grpc_after_data_is_committed_and_body_intact() {
    let up = Upstream::new(vec![Step::GrpcDataFirst(14), Step::Status(200)]);
    let svc = RetryLayer::new(RetryPolicy::default(), generous_budget()).layer(up.service());
    let resp = svc.oneshot(req(Method::GET, "")).await.unwrap();
    assert_eq!(attempts(&resp), "1");
    let collected = resp.into_body().collect().await.unwrap();
    assert_eq!(
        collected
            .trailers()
            .and_then(crate::resilience::classify::grpc_status),
        Some(14)
    );
    assert_eq!(collected.to_bytes(), Bytes::from_static(b"msg"));
}

#[tokio::test(start_paused = true)]
async fn per_try_timeout_is_retried_as_504() {
    let up = Upstream::new(vec![Step::Hang, Step::Status(200)]);
    let per_try = TimeoutLayer::new(TimeoutKind::PerTry, Duration::from_millis(100));
    let svc = RetryLayer::new(RetryPolicy::default(), generous_budget())
        .layer(per_try.layer(up.service()));
    let resp = svc.oneshot(req(Method::GET, "")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(attempts(&resp), "2");
}

#[tokio::test(start_paused = true)]
async fn overall_timeout_bounds_all_tries() {
    let up = Upstream::new((0..10).map(|_| Step::Hang).collect());
    let per_try = TimeoutLayer::new(TimeoutKind::PerTry, Duration::from_millis(100));
    let overall = TimeoutLayer::new(TimeoutKind::Overall, Duration::from_millis(150));
    let policy = RetryPolicy {
        max_attempts: 10,
        ..RetryPolicy::default()
    };
    let svc = overall
        .layer(RetryLayer::new(policy, generous_budget()).layer(per_try.layer(up.service())));
    let err = svc.oneshot(req(Method::GET, "")).await.unwrap_err();
    let t = err
        .downcast_ref::<crate::resilience::TimeoutError>()
        .expect("timeout");
    assert_eq!(t.kind(), TimeoutKind::Overall);
    assert_eq!(up.calls.load(Ordering::SeqCst), 2);
}

type Chunks = StreamBody<
    futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::convert::Infallible>>>,
>;

/// A gRPC request whose body has no length (as on HTTP/2), in `chunks`.
fn grpc_stream(chunks: &[&'static str]) -> Request<Chunks> {
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect();
    Request::post("/pkg.Svc/M")
        .header("content-type", "application/grpc")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap()
}

/// An upstream answering `UNAVAILABLE` (trailers-only) to its first `fail`
/// calls, after reading the whole body unless `read` is false.
fn grpc_upstream(
    fail: u32,
    read: bool,
    seen: Arc<Mutex<Vec<Bytes>>>,
) -> impl tower::Service<
    Request<ReplayBody<Chunks>>,
    Response = Resp,
    Error = BoxError,
    Future = impl Future<Output = Result<Resp, BoxError>> + Send,
> + Clone
+ Send
+ 'static {
    let calls = Arc::new(AtomicU32::new(0));
    service_fn(move |req: Request<ReplayBody<Chunks>>| {
        let (calls, seen) = (calls.clone(), seen.clone());
        async move {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if read || n > 0 {
                let collected: Result<_, BoxError> = req.into_body().collect().await;
                let body = collected.map(|c| c.to_bytes()).unwrap_or_default();
                seen.lock().unwrap().push(body);
            }
            let code = if n < fail { 14u32 } else { 0 };
            Ok::<Resp, BoxError>(
                Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", code)
                    .body(full(""))
                    .unwrap(),
            )
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_grpc_body_of_unknown_length_is_recorded_and_replayed() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc = RetryLayer::new(RetryPolicy::default(), generous_budget()).layer(grpc_upstream(
        2,
        true,
        seen.clone(),
    ));
    let resp = svc.oneshot(grpc_stream(&["he", "llo"])).await.unwrap();
    assert_eq!(attempts(&resp), "3");
    assert_eq!(resp.headers()["grpc-status"], "0");
    assert_eq!(*seen.lock().unwrap(), vec![Bytes::from_static(b"hello"); 3]);
}

#[tokio::test(start_paused = true)]
async fn a_grpc_body_not_sent_whole_or_too_large_is_not_retried() {
    // Answered before the body was read: the recording is incomplete.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc = RetryLayer::new(RetryPolicy::default(), generous_budget()).layer(grpc_upstream(
        1,
        false,
        seen.clone(),
    ));
    let resp = svc.oneshot(grpc_stream(&["a", "b"])).await.unwrap();
    assert_eq!(attempts(&resp), "1");
    assert_eq!(resp.headers()["grpc-status"], "14");

    // Larger than the replay limit: streamed whole, once.
    let policy = RetryPolicy {
        max_replay_body: 4,
        ..RetryPolicy::default()
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc =
        RetryLayer::new(policy, generous_budget()).layer(grpc_upstream(1, true, seen.clone()));
    let resp = svc.oneshot(grpc_stream(&["abc", "def"])).await.unwrap();
    assert_eq!(attempts(&resp), "1");
    assert_eq!(*seen.lock().unwrap(), vec![Bytes::from_static(b"abcdef")]);
}
