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
