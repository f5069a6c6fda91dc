//! The request body every handler receives.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

use super::progress::Progress;
use crate::body::{BodyReadTimeout, BoxError, ClientBodyError, ReadTimeout};

pin_project_lite::pin_project! {
    /// The client's request body as hyper delivers it, streamed, with two
    /// additions made once here for every listener:
    ///
    /// - `body_read_timeout`: a client that sends a head and part of a body
    ///   and then goes silent fails the body (a [`crate::body::BodyReadTimeout`]
    ///   error) instead of holding the request, its upstream call and its
    ///   connection forever, whatever the route's own timeout;
/// - any other body error (malformed chunked framing, a connection closed
///   mid-body) comes out as a [`crate::body::ClientBodyError`], so a
///   forwarder can answer `400` rather than `502`
///   ([`crate::body::is_client_body_error`]);
    /// - every data frame counts as progress for the connection's idle bound.
    ///
    /// Upgrades (`hyper::upgrade::on(&mut req)`) work as on hyper's own
    /// request: they live in the request's extensions.
    pub struct RequestBody {
        #[pin]
        inner: ReadTimeout<Incoming>,
        progress: Progress,
    }
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming, timeout: Duration, progress: Progress) -> Self {
        Self {
            inner: ReadTimeout::new(inner, timeout),
            progress,
        }
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody").finish_non_exhaustive()
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.progress.touch();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) if !e.is::<BodyReadTimeout>() => {
                Poll::Ready(Some(Err(Box::new(ClientBodyError(e)))))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
