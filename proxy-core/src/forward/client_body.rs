//! The client's request body on its way to the upstream.
//!
//! Two things about it are decided here, once for every proxy that forwards
//! a body:
//!
//! - **Whose fault a failure is.** When the client's body is malformed (a bad
//!   chunk size, oversized chunk extensions, a connection cut mid-body), the
//!   upstream client only reports "sending the request failed". The error is
//!   wrapped in [`ClientBodyError`] here, so
//!   [`ForwardError::from_client`](super::ForwardError::from_client) can tell
//!   it from an upstream failure and answer `400`, not `502`.
//! - **Request trailers are dropped.** A trailer field could carry the name
//!   of a header the proxy set for the upstream (an identity header, the
//!   request id) and be merged into the header section by the upstream's
//!   framework. No client needs request trailers through an edge proxy (gRPC
//!   sends its trailers on responses only), so they end the body instead.
//!
//! An HTTP/1 upstream client reports the body's error in its own error's
//! causes. An HTTP/2 one only resets the stream and reports the reset, so
//! for those the proxy shares a [`BodyOutcome`] with the body
//! ([`ClientBody::watched`]) and reads it when the exchange fails.
//!
//! Unwatched, the wrapper holds no state and allocates nothing; errors are
//! boxed only when they happen.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::ForwardError;
use crate::body::BoxError;
pub use crate::body::ClientBodyError;

/// How a watched client body failed, if it did: shared between the body
/// (which the upstream client owns) and the proxy.
#[derive(Debug, Default)]
pub struct BodyOutcome(AtomicU8);

const MALFORMED: u8 = 1;
const TOO_LARGE: u8 = 2;

impl BodyOutcome {
    /// The client's failure, if its body failed: `BodyTooLarge` past
    /// `limit`, else `ClientBody`.
    pub fn failure(&self, limit: u64) -> Option<ForwardError> {
        match self.0.load(Ordering::Acquire) {
            MALFORMED => Some(ForwardError::ClientBody(ClientBodyError(
                "the request body is malformed or was cut off".into(),
            ))),
            TOO_LARGE => Some(ForwardError::BodyTooLarge { limit }),
            _ => None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The client's body: errors marked as the client's, trailers dropped.
    #[derive(Debug)]
    pub struct ClientBody<B> {
        #[pin]
        inner: B,
        outcome: Option<Arc<BodyOutcome>>,
    }
}

impl<B> ClientBody<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            outcome: None,
        }
    }

    /// Also records a failure in `outcome` (for HTTP/2 upstreams).
    pub fn watched(inner: B, outcome: Arc<BodyOutcome>) -> Self {
        Self {
            inner,
            outcome: Some(outcome),
        }
    }
}

impl<B> HttpBody for ClientBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.project();
        match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) if frame.is_trailers() => Poll::Ready(None),
            Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
            Some(Err(e)) => {
                let e: BoxError = e.into();
                if let Some(outcome) = this.outcome {
                    let kind = if e.is::<http_body_util::LengthLimitError>() {
                        TOO_LARGE
                    } else {
                        MALFORMED
                    };
                    outcome.0.store(kind, Ordering::Release);
                }
                Poll::Ready(Some(Err(ClientBodyError(e))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    #[tokio::test]
    async fn trailers_are_dropped_and_data_kept() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-consumer", "mallory".parse().unwrap());
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Ok(Frame::trailers(trailers)),
        ];
        let body = ClientBody::new(StreamBody::new(futures_util::stream::iter(frames)));
        let collected = body.collect().await.unwrap();
        assert!(collected.trailers().is_none());
        assert_eq!(collected.to_bytes(), "abc");
    }

    #[tokio::test]
    async fn errors_are_marked_as_the_clients() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![Err("invalid chunk size".into())];
        let body = ClientBody::new(StreamBody::new(futures_util::stream::iter(frames)));
        let err = body.collect().await.unwrap_err();
        assert_eq!(err.to_string(), "invalid chunk size");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[tokio::test]
    async fn a_watched_body_records_how_it_failed() {
        let outcome = Arc::new(BodyOutcome::default());
        let frames: Vec<Result<Frame<Bytes>, BoxError>> =
            vec![Ok(Frame::data(Bytes::from_static(b"abc")))];
        let body = ClientBody::watched(
            StreamBody::new(futures_util::stream::iter(frames)),
            outcome.clone(),
        );
        body.collect().await.unwrap();
        assert!(outcome.failure(10).is_none());

        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![Err("bad chunk".into())];
        let body = ClientBody::watched(
            StreamBody::new(futures_util::stream::iter(frames)),
            outcome.clone(),
        );
        body.collect().await.unwrap_err();
        assert_eq!(outcome.failure(10).unwrap().kind(), "invalid-request-body");

        let outcome = Arc::new(BodyOutcome::default());
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
            vec![Ok(Frame::data(Bytes::from_static(b"0123456789ab")))];
        let limited =
            http_body_util::Limited::new(StreamBody::new(futures_util::stream::iter(frames)), 10);
        let body = ClientBody::watched(limited, outcome.clone());
        body.collect().await.unwrap_err();
        assert_eq!(outcome.failure(10).unwrap().kind(), "payload-too-large");
    }
}
