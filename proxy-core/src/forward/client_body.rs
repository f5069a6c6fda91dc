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
//! The wrapper holds no state and allocates nothing; errors are boxed only
//! when they happen.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::body::BoxError;

/// A failure reading the client's request body (see the module docs).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientBodyError(#[source] pub BoxError);

pin_project_lite::pin_project! {
    /// The client's body: errors marked as the client's, trailers dropped.
    #[derive(Debug)]
    pub struct ClientBody<B> {
        #[pin]
        inner: B,
    }
}

impl<B> ClientBody<B> {
    pub fn new(inner: B) -> Self {
        Self { inner }
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
        match ready!(self.project().inner.poll_frame(cx)) {
            Some(Ok(frame)) if frame.is_trailers() => Poll::Ready(None),
            Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
            Some(Err(e)) => Poll::Ready(Some(Err(ClientBodyError(e.into())))),
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
}
