//! The caller's deadline: `grpc-timeout`.
//!
//! A gRPC client sends how long it will wait (`grpc-timeout: 250m`); past
//! that, any work done for it is wasted, and work still holding a database
//! transaction is worse than wasted. The call is given that long: a handler
//! still running then is dropped (its transaction rolls back) and the caller
//! gets `DEADLINE_EXCEEDED`; a response stream still running then ends
//! with `DEADLINE_EXCEEDED` in its trailers. tonic does the same in its own
//! server, which a service serving gRPC beside REST does not use.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use tokio::time::{Instant, Sleep};

/// The header a gRPC client puts its deadline in.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// Runs the call within its `grpc-timeout`, when it has one.
pub async fn enforce(request: Request, next: Next) -> Response {
    let Some(timeout) = parse(request.headers()) else {
        return next.run(request).await;
    };
    let deadline = Instant::now() + timeout;
    match tokio::time::timeout_at(deadline, next.run(request)).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = Body::new(DeadlineBody {
                inner: body,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
                done: false,
            });
            Response::from_parts(parts, body)
        }
        Err(_) => exceeded().into_http(),
    }
}

fn exceeded() -> tonic::Status {
    tonic::Status::deadline_exceeded("the call's grpc-timeout passed before it completed")
}

/// `grpc-timeout`: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`,
/// `n`). A malformed value is ignored, as the gRPC spec's servers do.
pub fn parse(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(GRPC_TIMEOUT)?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A response body that ends with `DEADLINE_EXCEEDED` trailers when the
/// deadline passes before the body does. Dropping the rest of the stream
/// stops the work producing it.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    done: bool,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if frame.is_none() {
                this.done = true;
            }
            return Poll::Ready(frame);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.done = true;
            // Drop the stream now: whatever produces it stops here.
            this.inner = Body::empty();
            let mut trailers = HeaderMap::new();
            // Writing a status into a fresh map only fails for a message
            // that cannot be a header value, which this one can.
            let _ = exceeded().add_header(&mut trailers);
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(value: &str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_TIMEOUT, value.parse().unwrap());
        parse(&headers)
    }

    #[test]
    fn reads_every_unit_and_rejects_the_malformed() {
        assert_eq!(timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
        assert_eq!(timeout("123456789S"), None, "more than 8 digits");
        assert_eq!(timeout("10"), None, "no unit");
        assert_eq!(timeout("S"), None, "no digits");
        assert_eq!(timeout("-1S"), None);
        assert_eq!(timeout("1x"), None);
        assert_eq!(parse(&HeaderMap::new()), None);
    }
}
