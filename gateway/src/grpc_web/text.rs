//! The base64 body of `application/grpc-web-text` requests, decoded as it
//! streams. A client may encode each message on its own, so padding can
//! appear mid-body: every padded quad ends a segment decoded separately.

use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use proxy_core::body::BoxError;

pin_project_lite::pin_project! {
    /// Decodes a base64 body; bytes of an incomplete quad wait for the next chunk.
    pub(crate) struct Decoded<B> {
        #[pin]
        inner: B,
        pending: Vec<u8>,
    }
}

impl<B> Decoded<B> {
    pub(crate) fn new(inner: B) -> Self {
        Self {
            inner,
            pending: Vec::new(),
        }
    }
}

/// Decodes the whole quads of `input`, leaving an incomplete one behind.
fn decode_quads(pending: &mut Vec<u8>) -> Result<Bytes, BoxError> {
    pending.retain(|b| !b.is_ascii_whitespace());
    let whole = pending.len() / 4 * 4;
    let quads: Vec<u8> = pending.drain(..whole).collect();
    let mut out = Vec::with_capacity(whole / 4 * 3);
    let mut start = 0;
    for end in (4..=quads.len()).step_by(4) {
        if quads[end - 1] == b'=' || end == quads.len() {
            STANDARD
                .decode_vec(&quads[start..end], &mut out)
                .map_err(|e| format!("invalid grpc-web-text body: {e}"))?;
            start = end;
        }
    }
    Ok(out.into())
}

impl<B> Body for Decoded<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            return match std::task::ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.pending.extend_from_slice(&data);
                        let decoded = decode_quads(this.pending)?;
                        if decoded.is_empty() {
                            continue;
                        }
                        Poll::Ready(Some(Ok(Frame::data(decoded))))
                    }
                    Err(frame) => Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(e)) => Poll::Ready(Some(Err(e.into()))),
                None if !this.pending.is_empty() => {
                    let left = this.pending.len();
                    this.pending.clear();
                    Poll::Ready(Some(Err(format!(
                        "invalid grpc-web-text body: {left} bytes after the last whole quad"
                    )
                    .into())))
                }
                None => Poll::Ready(None),
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    async fn decode(chunks: &[&'static str]) -> Result<Bytes, BoxError> {
        let frames = chunks
            .iter()
            .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect::<Vec<_>>();
        let body = Decoded::new(StreamBody::new(futures_util::stream::iter(frames)));
        Ok(body.collect().await?.to_bytes())
    }

    #[tokio::test]
    async fn split_quads_and_padding_mid_body() {
        // "hello" = aGVsbG8=, "!" = IQ==
        assert_eq!(decode(&["aGV", "sbG8=IQ", "=="]).await.unwrap(), "hello!");
        assert_eq!(decode(&["aGVsbG8="]).await.unwrap(), "hello");
        assert!(decode(&["aGVsbG8"]).await.is_err());
        assert!(decode(&["a*==",]).await.is_err());
    }
}
