//! Per-try and overall deadlines.
//!
//! The same layer serves both: placed inside the retry loop it bounds one try
//! (and its [`TimeoutError`] is then a retryable 504), placed outside it bounds the
//! whole exchange including backoff. The deadline covers the time until the
//! response head arrives; a streaming body is not cut off by it.

mod future;

use std::fmt;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service};

pub use future::ResponseFuture;

use super::BoxError;

/// Which deadline fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// One try (one attempt of the retry loop).
    PerTry,
    /// The whole request, all tries and backoffs together.
    Overall,
    /// A request timeout of a listener (e.g. the sidecar's inbound).
    Request,
}

/// A deadline elapsed before the response head arrived. Maps to `504`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TimeoutError {
    kind: TimeoutKind,
    after: Duration,
}

impl TimeoutError {
    /// A timeout of `kind` after `after`.
    pub fn new(kind: TimeoutKind, after: Duration) -> Self {
        TimeoutError { kind, after }
    }

    /// Which deadline fired.
    pub fn kind(&self) -> TimeoutKind {
        self.kind
    }

    /// The configured deadline.
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TimeoutKind::PerTry => "per-try timeout",
            TimeoutKind::Overall => "overall timeout",
            TimeoutKind::Request => "request timeout",
        };
        write!(
            f,
            "{what} of {} elapsed",
            humantime::format_duration(self.after)
        )
    }
}

/// Applies a [`Timeout`] to a service.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    kind: TimeoutKind,
    after: Option<Duration>,
}

impl TimeoutLayer {
    /// A layer whose services fail with [`TimeoutError`] of `kind` after `after`.
    pub fn new(kind: TimeoutKind, after: Duration) -> Self {
        TimeoutLayer {
            kind,
            after: Some(after),
        }
    }

    /// [`new`](Self::new) when a deadline is configured; with `None` the
    /// layer passes calls through and registers no timer (a stack keeps one
    /// shape whether or not its timeouts are set).
    pub fn optional(kind: TimeoutKind, after: Option<Duration>) -> Self {
        TimeoutLayer { kind, after }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            kind: self.kind,
            after: self.after,
        }
    }
}

/// Fails a call with [`TimeoutError`] when its response takes longer than the deadline.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    kind: TimeoutKind,
    after: Option<Duration>,
}

impl<S> Timeout<S> {
    /// Wraps `inner` with a deadline of `after`.
    pub fn new(inner: S, kind: TimeoutKind, after: Duration) -> Self {
        Timeout {
            inner,
            kind,
            after: Some(after),
        }
    }
}

impl<S, R> Service<R> for Timeout<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        ResponseFuture::new(
            self.inner.call(req),
            self.after.map(tokio::time::sleep),
            TimeoutError::new(self.kind, self.after.unwrap_or_default()),
        )
    }
}

#[cfg(test)]
mod tests;
