//! The future of [`Timeout`](super::Timeout): the inner future raced against a sleep.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::TimeoutError;
use crate::resilience::BoxError;

pin_project! {
    /// Resolves to the inner response, or to [`TimeoutError`] when the sleep wins.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // `None` when no deadline is configured: no timer is registered.
        #[pin]
        sleep: Option<Sleep>,
        error: TimeoutError,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, sleep: Option<Sleep>, error: TimeoutError) -> Self {
        ResponseFuture {
            inner,
            sleep,
            error,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(r) = this.inner.poll(cx) {
            return Poll::Ready(r.map_err(Into::into));
        }
        match this.sleep.as_pin_mut().map(|s| s.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(Box::new(this.error.clone()))),
            Some(Poll::Pending) | None => Poll::Pending,
        }
    }
}
