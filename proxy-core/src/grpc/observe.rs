//! Learning a call's `grpc-status` from its response, for metrics, spans and
//! logs.
//!
//! A gRPC response is HTTP 200 whether the call succeeded or not: its outcome
//! is in the trailers, which arrive after the last message. [`Observed`]
//! wraps the response body and hands the outcome to a callback exactly once:
//! when the trailers pass, when the body ends without them, or when it is
//! dropped first (the client went away: `CANCELLED`, as the client sees it).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::Code;
use super::status;
use crate::body::{self, Body, BoxError};

/// How a call ended, as seen by a proxy forwarding its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A `grpc-status`, from the headers or the trailers.
    Status(Code),
    /// The body ended, or failed, without one: the client sees `INTERNAL`
    /// (or `UNKNOWN`), and the proxy reports it as a missing status.
    Missing,
    /// The response was dropped before it ended.
    Cancelled,
}

impl Outcome {
    /// The code a client sees for this outcome.
    pub fn code(self) -> Code {
        match self {
            Outcome::Status(c) => c,
            Outcome::Missing => Code::Unknown,
            Outcome::Cancelled => Code::Cancelled,
        }
    }
}

pin_project_lite::pin_project! {
    /// A gRPC response body that reports the call's outcome once.
    pub struct Observed<F: FnOnce(Outcome)> {
        #[pin]
        inner: Body,
        report: Option<F>,
    }

    impl<F: FnOnce(Outcome)> PinnedDrop for Observed<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(report) = this.report.take() {
                report(Outcome::Cancelled);
            }
        }
    }
}

/// Calls `report` with the outcome of the gRPC response `resp`: at once for a
/// trailers-only response (the status is in its headers), otherwise when its
/// body yields the trailers, ends or is dropped.
pub fn observe<F>(resp: Response<Body>, report: F) -> Response<Body>
where
    F: FnOnce(Outcome) + Send + 'static,
{
    if let Some(code) = status::status(resp.headers()) {
        report(Outcome::Status(code));
        return resp;
    }
    resp.map(|inner| {
        body::boxed(Observed {
            inner,
            report: Some(report),
        })
    })
}

impl<F: FnOnce(Outcome)> HttpBody for Observed<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        let outcome = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame
                .trailers_ref()
                .map(|t| status::status(t).map_or(Outcome::Missing, Outcome::Status)),
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => Some(Outcome::Missing),
            Poll::Pending => None,
        };
        if let Some(outcome) = outcome
            && let Some(report) = this.report.take()
        {
            report(outcome);
        }
        polled
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
    use super::*;
    use http::HeaderMap;
    use http_body_util::{BodyExt, StreamBody};
    use std::sync::{Arc, Mutex};

    fn recorder() -> (
        Arc<Mutex<Vec<Outcome>>>,
        impl FnOnce(Outcome) + Send + 'static,
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (seen, move |o| s.lock().unwrap().push(o))
    }

    fn streamed(frames: Vec<Frame<Bytes>>) -> Body {
        let s = futures_util::stream::iter(frames.into_iter().map(Ok::<_, BoxError>));
        body::boxed(StreamBody::new(s))
    }

    #[tokio::test]
    async fn trailers_give_the_status_once() {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", "5".parse().unwrap());
        let body = streamed(vec![
            Frame::data(Bytes::from_static(b"x")),
            Frame::trailers(t),
        ]);
        let (seen, report) = recorder();
        let resp = observe(Response::new(body), report);
        let got = resp.into_body().collect().await.unwrap();
        assert_eq!(got.trailers().unwrap()["grpc-status"], "5");
        assert_eq!(*seen.lock().unwrap(), vec![Outcome::Status(Code::NotFound)]);
    }

    #[tokio::test]
    async fn headers_decide_a_trailers_only_response() {
        let mut resp = Response::new(body::empty());
        resp.headers_mut()
            .insert("grpc-status", "14".parse().unwrap());
        let (seen, report) = recorder();
        drop(observe(resp, report));
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Outcome::Status(Code::Unavailable)]
        );
    }

    #[tokio::test]
    async fn a_dropped_stream_is_cancelled_and_an_ended_one_missing() {
        let (seen, report) = recorder();
        drop(observe(
            Response::new(streamed(vec![Frame::data(Bytes::new())])),
            report,
        ));
        assert_eq!(*seen.lock().unwrap(), vec![Outcome::Cancelled]);
        let (seen, report) = recorder();
        let resp = observe(Response::new(streamed(vec![])), report);
        resp.into_body().collect().await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![Outcome::Missing]);
    }
}
