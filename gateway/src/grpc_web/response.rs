//! The response body of a gRPC-Web call: the gRPC messages as they come,
//! then the trailers as one frame with flag `0x80` (gRPC-Web spec:
//! `0x80, length (4 bytes, big endian), "name: value\r\n"…`, lower-case
//! names), all base64-encoded for `-text` clients.

use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use proxy_core::body::{Body, BoxError};

pin_project_lite::pin_project! {
    /// A gRPC response body re-framed for a gRPC-Web client.
    pub(crate) struct Framed {
        #[pin]
        inner: Body,
        text: bool,
    }
}

impl Framed {
    pub(crate) fn new(inner: Body, text: bool) -> Self {
        Self { inner, text }
    }
}

/// The trailer frame for `trailers`.
pub(crate) fn trailer_frame(trailers: &HeaderMap) -> Bytes {
    let mut block = Vec::new();
    for (name, value) in trailers {
        block.extend_from_slice(name.as_str().as_bytes());
        block.extend_from_slice(b": ");
        block.extend_from_slice(value.as_bytes());
        block.extend_from_slice(b"\r\n");
    }
    let mut out = BytesMut::with_capacity(5 + block.len());
    out.put_u8(0x80);
    out.put_u32(u32::try_from(block.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(&block);
    out.freeze()
}

impl HttpBody for Framed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let frame = match std::task::ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        let bytes = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => trailer_frame(&trailers),
                Err(_) => Bytes::new(),
            },
        };
        let bytes = if *this.text {
            Bytes::from(STANDARD.encode(&bytes))
        } else {
            bytes
        };
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_frame_per_spec() {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", "0".parse().unwrap());
        t.insert("grpc-message", "ok".parse().unwrap());
        let f = trailer_frame(&t);
        assert_eq!(f[0], 0x80);
        let len = u32::from_be_bytes([f[1], f[2], f[3], f[4]]) as usize;
        assert_eq!(len, f.len() - 5);
        assert_eq!(&f[5..], b"grpc-status: 0\r\ngrpc-message: ok\r\n");
    }
}
