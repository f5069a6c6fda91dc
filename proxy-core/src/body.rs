//! The body type that flows through both proxies.
//!
//! Bodies are streamed, never collected: a request body arrives as hyper's
//! `Incoming` and leaves for the upstream as the same stream, boxed once.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Errors a body stream can yield.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming body of any origin: a client's upload, an upstream's response,
/// or a small body the proxy generated itself.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body held in memory (problem documents, admin pages).
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes any streaming body whose errors convert into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A body that delivered no data for [`ReadTimeout`]'s bound.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the client sent no request body data for {0:?}")]
pub struct BodyReadTimeout(pub std::time::Duration);

/// The client's request body broke: malformed framing (a bad chunk size,
/// invalid bytes), or the connection closed before the body ended. The
/// serving function wraps every such error of a request body in this type,
/// so code that forwards the body can tell a client error (answer `400`)
/// from an upstream failure (`502`) with [`is_client_body_error`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientBodyError(#[source] pub BoxError);

/// Whether `err`, or any error in its source chain, is the client's request
/// body failing ([`ClientBodyError`] or [`BodyReadTimeout`]): an upstream
/// client reports a failed request body as its own error with the body's
/// error as a source.
pub fn is_client_body_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    // Bounded: source chains are short, and a cycle would be a bug elsewhere.
    for _ in 0..32 {
        let Some(e) = next else { return false };
        if e.is::<ClientBodyError>() || e.is::<BodyReadTimeout>() {
            return true;
        }
        next = e.source();
    }
    false
}

pin_project_lite::pin_project! {
    /// Fails a body whose next frame does not arrive within `timeout` of the
    /// consumer asking for it.
    ///
    /// The clock only runs while the consumer waits on the body: a consumer
    /// that stops polling (an upstream applying backpressure) is not the
    /// sender's fault. After the timeout error the body ends.
    pub struct ReadTimeout<B> {
        #[pin]
        inner: B,
        timeout: std::time::Duration,
        // Allocated the first time the body has to wait, then reused.
        sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
        waiting: bool,
        timed_out: bool,
    }
}

impl<B> ReadTimeout<B> {
    pub fn new(inner: B, timeout: std::time::Duration) -> Self {
        Self {
            inner,
            timeout,
            sleep: None,
            waiting: false,
            timed_out: false,
        }
    }
}

impl<B> http_body::Body for ReadTimeout<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let this = self.project();
        if *this.timed_out {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.waiting = false;
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = tokio::time::Instant::now() + *this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !*this.waiting {
                    *this.waiting = true;
                    sleep.as_mut().reset(deadline);
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    *this.timed_out = true;
                    return Poll::Ready(Some(Err(BodyReadTimeout(*this.timeout).into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.timed_out || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;

    use super::*;

    /// A body that yields one chunk, then never another.
    struct Stalls(bool);

    impl http_body::Body for Stalls {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            if self.0 {
                return std::task::Poll::Pending;
            }
            self.0 = true;
            std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
                b"part",
            )))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_bound() {
        let mut body = ReadTimeout::new(Stalls(false), Duration::from_secs(30));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "part");
        let started = tokio::time::Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyReadTimeout>(), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(
            body.frame().await.is_none(),
            "the body ends after the timeout"
        );
    }

    #[test]
    fn client_body_errors_are_found_through_source_chains() {
        #[derive(Debug, thiserror::Error)]
        #[error("upstream request failed")]
        struct Upstream(#[source] BoxError);
        let wrapped = Upstream(Box::new(ClientBodyError("bad chunk size".into())));
        assert!(is_client_body_error(&wrapped));
        let timed_out = Upstream(Box::new(BodyReadTimeout(Duration::from_secs(1))));
        assert!(is_client_body_error(&timed_out));
        let other = Upstream("connection reset".into());
        assert!(!is_client_body_error(&other));
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_body_is_untouched() {
        let body = ReadTimeout::new(full("all of it"), Duration::from_secs(1));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "all of it");
    }
}
