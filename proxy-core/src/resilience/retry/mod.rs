//! Retries with bounded body replay, exponential backoff with full jitter and a
//! shared [`RetryBudget`].
//!
//! The loop, per request:
//!
//! 1. count the request in the budget;
//! 2. buffer the body if it is small and of known length (`body.rs`); a gRPC
//!    body (unknown length) is recorded while the first try streams it, and
//!    replayed when it went out whole within the limit; any other body is
//!    sent once, unretried;
//! 3. try; classify the outcome (connect error, per-try timeout, configured
//!    status, `grpc-status` in headers or in a trailers-first body);
//! 4. retry only while attempts remain, the method allows it and the budget
//!    grants a token, after a jittered backoff.
//!
//! Every try carries an [`Attempt`] in its request extensions, so telemetry
//! below this layer can tag its span with the attempt number, and every retry
//! decision goes to the optional [`RetryHook`] (metrics) and to `tracing`.
//! The response carries `x-retry-attempts: N` (tries made); a final error is
//! wrapped in [`RetriesExhausted`] when more than one try was made.

mod body;
mod policy;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt};

pub use body::{PeekBody, ReplayBody};
pub use policy::{RetryPolicy, RetryReason, is_idempotent};

use self::body::{Buffered, Prepared, Recording, prepare};
use super::BoxError;
use super::budget::RetryBudget;
use super::classify;

/// The response header that records how many tries were made.
pub const ATTEMPTS_HEADER: &str = "x-retry-attempts";

/// Which try a request is, in its extensions: telemetry below the retry layer
/// reads it to tag the try's CLIENT span (`weir.retry.attempt`, `weir.retry.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the original try, 2 for the first retry, …
    pub number: u32,
    /// Why the previous try is being retried (`None` on the first try).
    pub reason: Option<RetryReason>,
}

/// A retry decision, reported to the [`RetryHook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryEvent {
    /// Try `attempt` failed for `reason`; another follows after `backoff`.
    Retry {
        /// The try that failed.
        attempt: u32,
        /// Why it is retried.
        reason: RetryReason,
        /// The wait before the next try.
        backoff: Duration,
    },
    /// A retry was wanted but the budget had no token left.
    BudgetExhausted {
        /// The try that failed.
        attempt: u32,
        /// Why it would have been retried.
        reason: RetryReason,
    },
    /// The request body was too large (or of unknown length) to replay.
    NotReplayable,
}

/// Observer of retry decisions (metrics, telemetry).
pub type RetryHook = Arc<dyn Fn(&RetryEvent) + Send + Sync>;

/// The last error of a request that was tried more than once.
#[derive(Debug, thiserror::Error)]
#[error("failed after {attempts} attempts")]
pub struct RetriesExhausted {
    /// Tries made.
    pub attempts: u32,
    #[source]
    source: BoxError,
}

/// Applies [`Retry`] to a service.
#[derive(Clone)]
pub struct RetryLayer {
    policy: Arc<RetryPolicy>,
    budget: Arc<RetryBudget>,
    hook: Option<RetryHook>,
}

impl RetryLayer {
    /// Retries by `policy`, within `budget` (shared by every request to one destination).
    pub fn new(policy: RetryPolicy, budget: Arc<RetryBudget>) -> Self {
        RetryLayer {
            policy: Arc::new(policy),
            budget,
            hook: None,
        }
    }

    /// Reports every retry decision to `hook`.
    pub fn with_hook(mut self, hook: RetryHook) -> Self {
        self.hook = Some(hook);
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            policy: self.policy.clone(),
            budget: self.budget.clone(),
            hook: self.hook.clone(),
        }
    }
}

/// The retry middleware (see the module docs).
#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    policy: Arc<RetryPolicy>,
    budget: Arc<RetryBudget>,
    hook: Option<RetryHook>,
}

impl<S, B, ResB> Service<Request<B>> for Retry<S>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Send + Unpin + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<PeekBody<ResB>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is awaited per try on a clone of the inner service.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let svc = self.inner.clone();
        let policy = self.policy.clone();
        let budget = self.budget.clone();
        let hook = self.hook.clone();
        Box::pin(run(svc, policy, budget, hook, req))
    }
}

async fn run<S, B, ResB>(
    mut svc: S,
    policy: Arc<RetryPolicy>,
    budget: Arc<RetryBudget>,
    hook: Option<RetryHook>,
    req: Request<B>,
) -> Result<Response<PeekBody<ResB>>, BoxError>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Unpin,
    ResB::Error: Into<BoxError>,
{
    let emit = |ev: RetryEvent| {
        tracing::debug!(event = ?ev, "retry");
        if let Some(h) = &hook {
            h(&ev);
        }
    };
    budget.deposit();
    let (parts, body) = req.into_parts();
    let method_ok = policy.method_allowed(&parts.method);
    let grpc_ok = method_ok || classify::is_grpc(&parts.headers);
    let grpc_request = classify::is_grpc(&parts.headers);
    let mut source = if policy.may_retry(&parts.method, grpc_ok) {
        match prepare(body, policy.max_replay_body, grpc_request).await? {
            Prepared::Replayable(b) => Source::Buffered(b),
            Prepared::Teed(b) => Source::Teed {
                first: Some(b),
                recording: Recording::new(policy.max_replay_body),
            },
            Prepared::Streaming(body) => {
                emit(RetryEvent::NotReplayable);
                return once(&mut svc, parts, body).await;
            }
        }
    } else {
        return once(&mut svc, parts, ReplayBody::stream(body)).await;
    };

    let peek_grpc = !policy.grpc_codes.is_empty();
    let mut attempt = 1u32;
    let mut previous: Option<RetryReason> = None;
    loop {
        let mut try_parts = parts.clone();
        try_parts.extensions.insert(Attempt {
            number: attempt,
            reason: previous,
        });
        let Some(body) = source.next_body() else {
            // Only reached after a try that `can_replay` allowed.
            return Err("retry body unavailable".into());
        };
        let req = Request::from_parts(try_parts, body);
        let outcome = try_once(&mut svc, req, peek_grpc).await;
        let reason = match &outcome {
            Ok((resp, grpc)) => policy.response_reason(method_ok, grpc_ok, resp.status(), *grpc),
            Err(e) => policy.error_reason(method_ok, &**e),
        };
        let reason = match reason {
            Some(r) if attempt < policy.max_attempts => r,
            _ => return finish(outcome, attempt),
        };
        if !source.can_replay() {
            emit(RetryEvent::NotReplayable);
            return finish(outcome, attempt);
        }
        if !budget.try_withdraw() {
            emit(RetryEvent::BudgetExhausted { attempt, reason });
            return finish(outcome, attempt);
        }
        drop(outcome);
        let backoff = policy.backoff(attempt);
        emit(RetryEvent::Retry {
            attempt,
            reason,
            backoff,
        });
        tokio::time::sleep(backoff).await;
        attempt += 1;
        previous = Some(reason);
    }
}

/// Where each try's request body comes from.
enum Source<B> {
    /// Read ahead whole: every try replays it.
    Buffered(Buffered),
    /// A gRPC body of unknown length: the first try streams it while it is
    /// recorded, later tries replay the recording.
    Teed {
        first: Option<B>,
        recording: Arc<Mutex<Recording>>,
    },
}

impl<B> Source<B> {
    fn next_body(&mut self) -> Option<ReplayBody<B>> {
        match self {
            Source::Buffered(b) => Some(b.replay()),
            Source::Teed { first, recording } => match first.take() {
                Some(rest) => Some(ReplayBody::Recorded {
                    rest,
                    recording: recording.clone(),
                }),
                None => recording
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .replayable()
                    .map(|b| b.replay()),
            },
        }
    }

    /// Whether another try can have the whole body.
    fn can_replay(&self) -> bool {
        match self {
            Source::Buffered(_) => true,
            Source::Teed { recording, .. } => recording
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .replayable()
                .is_some(),
        }
    }
}

/// One unretried try (body streams).
async fn once<S, B, ResB>(
    svc: &mut S,
    mut parts: http::request::Parts,
    body: ReplayBody<B>,
) -> Result<Response<PeekBody<ResB>>, BoxError>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    parts.extensions.insert(Attempt {
        number: 1,
        reason: None,
    });
    let resp = svc
        .ready()
        .await
        .map_err(Into::into)?
        .call(Request::from_parts(parts, body))
        .await
        .map_err(Into::into)?;
    let mut resp = resp.map(|b| PeekBody::new(None, b));
    resp.headers_mut()
        .insert(ATTEMPTS_HEADER, HeaderValue::from_static("1"));
    Ok(resp)
}

type TryOutcome<ResB> = Result<(Response<PeekBody<ResB>>, Option<u32>), BoxError>;

/// One try, with the gRPC status found in the headers or, for a gRPC response
/// whose first frame is its trailers, there.
async fn try_once<S, B, ResB>(
    svc: &mut S,
    req: Request<ReplayBody<B>>,
    peek: bool,
) -> TryOutcome<ResB>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Unpin,
    ResB::Error: Into<BoxError>,
{
    let resp = svc
        .ready()
        .await
        .map_err(Into::into)?
        .call(req)
        .await
        .map_err(Into::into)?;
    let (head, mut body) = resp.into_parts();
    let mut grpc = classify::grpc_status(&head.headers);
    let mut first: Option<Frame<Bytes>> = None;
    if peek && grpc.is_none() && classify::is_grpc(&head.headers) && !body.is_end_stream() {
        match body.frame().await {
            Some(Ok(frame)) => {
                grpc = frame.trailers_ref().and_then(classify::grpc_status);
                first = Some(frame);
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok((Response::from_parts(head, PeekBody::new(first, body)), grpc))
}

fn finish<ResB>(
    outcome: TryOutcome<ResB>,
    attempts: u32,
) -> Result<Response<PeekBody<ResB>>, BoxError> {
    match outcome {
        Ok((mut resp, _)) => {
            resp.headers_mut()
                .insert(ATTEMPTS_HEADER, HeaderValue::from(attempts));
            Ok(resp)
        }
        Err(source) if attempts > 1 => Err(Box::new(RetriesExhausted { attempts, source })),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
