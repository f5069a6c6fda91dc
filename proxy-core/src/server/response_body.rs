//! The response body as the serving function hands it to hyper.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::progress::Busy;
use crate::body::{Body, BoxError};

pin_project_lite::pin_project! {
    /// A handler's response body that keeps its request in flight until hyper
    /// has sent it all (or dropped it), and counts each frame as progress:
    /// a long download is a busy connection, not an idle one.
    pub(crate) struct ResponseBody {
        #[pin]
        inner: Body,
        busy: Busy,
    }
}

impl ResponseBody {
    pub(crate) fn new(inner: Body, busy: Busy) -> Self {
        Self { inner, busy }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let res = this.inner.poll_frame(cx);
        if matches!(res, Poll::Ready(Some(Ok(_)))) {
            this.busy.progress().touch();
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
