//! Bounded request-body replay, and the response body that may carry a peeked frame.
//!
//! A retry needs the request body again. Bodies whose length is known up front
//! and at most `max_replay_body` are read into memory once (a handful of `Bytes`
//! handles, so every replay is a cheap clone); anything larger, or of unknown
//! length, streams straight through and that request is simply not retried.
//! Waiting for the end of a body of unknown length before sending it would
//! deadlock protocols where the client waits for the server mid-stream.
//!
//! gRPC request bodies are of unknown length (HTTP/2, no `content-length`),
//! and a bidirectional call may wait for the server mid-stream, so they are
//! not read ahead either: the first try streams the body and a [`Recording`]
//! keeps a copy of what went through, up to `max_replay_body`. When the try
//! fails with a retryable status after the whole body went out, the retry
//! replays the copy; otherwise the call is not retried.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;

use crate::resilience::BoxError;

pin_project! {
    /// The request body a [`Retry`](super::Retry) hands to its inner service:
    /// either a replay of a buffered body or the original stream (after any
    /// frames that were read while deciding).
    #[project = ReplayBodyProj]
    pub enum ReplayBody<B> {
        /// A buffered body being replayed.
        Replay { chunks: VecDeque<Bytes>, trailers: Option<HeaderMap> },
        /// The original body, streamed once.
        Stream { prefix: VecDeque<Bytes>, #[pin] rest: B },
        /// The original body, streamed once and recorded for a replay.
        Recorded { #[pin] rest: B, recording: Arc<Mutex<Recording>> },
    }
}

impl<B> ReplayBody<B> {
    /// Streams `body` unchanged.
    pub fn stream(body: B) -> Self {
        ReplayBody::Stream {
            prefix: VecDeque::new(),
            rest: body,
        }
    }
}

impl<B> Body for ReplayBody<B>
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
        match self.project() {
            ReplayBodyProj::Replay { chunks, trailers } => Poll::Ready(
                chunks
                    .pop_front()
                    .map(Frame::data)
                    .or_else(|| trailers.take().map(Frame::trailers))
                    .map(Ok),
            ),
            ReplayBodyProj::Stream { prefix, rest } => match prefix.pop_front() {
                Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
                None => rest.poll_frame(cx).map_err(Into::into),
            },
            ReplayBodyProj::Recorded {
                mut rest,
                recording,
            } => {
                let polled = rest.as_mut().poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        let mut r = recording.lock().unwrap_or_else(|e| e.into_inner());
                        r.record(frame);
                        if rest.is_end_stream() {
                            r.complete = true;
                        }
                    }
                    Poll::Ready(None) => {
                        recording.lock().unwrap_or_else(|e| e.into_inner()).complete = true;
                    }
                    _ => {}
                }
                polled.map_err(Into::into)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReplayBody::Replay { chunks, trailers } => chunks.is_empty() && trailers.is_none(),
            ReplayBody::Stream { prefix, rest } => prefix.is_empty() && rest.is_end_stream(),
            ReplayBody::Recorded { rest, .. } => rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReplayBody::Replay { chunks, .. } => {
                SizeHint::with_exact(chunks.iter().map(|c| c.len() as u64).sum())
            }
            ReplayBody::Stream { prefix, rest } => {
                let extra: u64 = prefix.iter().map(|c| c.len() as u64).sum();
                let h = rest.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(h.lower() + extra);
                if let Some(u) = h.upper() {
                    out.set_upper(u + extra);
                }
                out
            }
            ReplayBody::Recorded { rest, .. } => rest.size_hint(),
        }
    }
}

/// What the first try of a call has sent of its body, kept for a replay
/// while it stays within the limit.
#[derive(Debug, Default)]
pub(crate) struct Recording {
    chunks: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    size: usize,
    max: usize,
    /// The body ended: the recording is all of it.
    complete: bool,
    /// The body outgrew `max`; nothing is kept.
    overflowed: bool,
}

impl Recording {
    pub(crate) fn new(max: usize) -> Arc<Mutex<Recording>> {
        Arc::new(Mutex::new(Recording {
            max,
            ..Recording::default()
        }))
    }

    fn record(&mut self, frame: &Frame<Bytes>) {
        if self.overflowed {
            return;
        }
        if let Some(data) = frame.data_ref() {
            self.size += data.len();
            if self.size > self.max {
                self.overflowed = true;
                self.chunks = Vec::new();
                return;
            }
            self.chunks.push(data.clone());
        } else if let Some(t) = frame.trailers_ref() {
            self.trailers = Some(t.clone());
        }
    }

    /// The whole body, when it went out completely and within the limit.
    pub(crate) fn replayable(&self) -> Option<Buffered> {
        (self.complete && !self.overflowed).then(|| Buffered {
            chunks: self.chunks.clone(),
            trailers: self.trailers.clone(),
        })
    }
}

/// A body read into memory, ready to be replayed any number of times.
#[derive(Debug, Clone, Default)]
pub(crate) struct Buffered {
    chunks: Vec<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Buffered {
    pub(crate) fn replay<B>(&self) -> ReplayBody<B> {
        ReplayBody::Replay {
            chunks: self.chunks.iter().cloned().collect(),
            trailers: self.trailers.clone(),
        }
    }
}

/// The outcome of [`prepare`].
pub(crate) enum Prepared<B> {
    /// The whole body is in memory: the request can be retried.
    Replayable(Buffered),
    /// The body streams: one attempt only.
    Streaming(ReplayBody<B>),
    /// The body is of unknown length and may be recorded as the first try
    /// streams it (`tee`).
    Teed(B),
}

/// Buffers `body` when its length is known and at most `max` bytes.
pub(crate) async fn prepare<B>(mut body: B, max: usize, tee: bool) -> Result<Prepared<B>, BoxError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    if body.is_end_stream() {
        return Ok(Prepared::Replayable(Buffered::default()));
    }
    match body.size_hint().upper() {
        Some(upper) if upper <= max as u64 => {}
        None if tee => return Ok(Prepared::Teed(body)),
        _ => return Ok(Prepared::Streaming(ReplayBody::stream(body))),
    }
    let mut buffered = Buffered::default();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Into::into)?;
        match frame.into_data() {
            Ok(data) => {
                total += data.len();
                buffered.chunks.push(data);
                if total > max {
                    // The size hint lied; never hold more than `max`.
                    return Ok(Prepared::Streaming(ReplayBody::Stream {
                        prefix: buffered.chunks.into(),
                        rest: body,
                    }));
                }
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    buffered.trailers = Some(t);
                }
            }
        }
    }
    Ok(Prepared::Replayable(buffered))
}

pin_project! {
    /// A response body that may start with one frame already read: the retry
    /// layer peeks at the first frame of a gRPC response to find a `grpc-status`
    /// trailer, and must hand that frame on.
    pub struct PeekBody<B> {
        first: Option<Frame<Bytes>>,
        #[pin]
        rest: B,
    }
}

impl<B> PeekBody<B> {
    pub(crate) fn new(first: Option<Frame<Bytes>>, rest: B) -> Self {
        PeekBody { first, rest }
    }
}

impl<B> Body for PeekBody<B>
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
        let this = self.project();
        if let Some(f) = this.first.take() {
            return Poll::Ready(Some(Ok(f)));
        }
        this.rest.poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let extra = self
            .first
            .as_ref()
            .and_then(|f| f.data_ref())
            .map_or(0, |d| d.len() as u64);
        let h = self.rest.size_hint();
        let mut out = SizeHint::new();
        out.set_lower(h.lower() + extra);
        if let Some(u) = h.upper() {
            out.set_upper(u + extra);
        }
        out
    }
}

impl<B> std::fmt::Debug for PeekBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeekBody")
            .field("peeked", &self.first.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> std::fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayBody::Replay { chunks, .. } => f
                .debug_struct("ReplayBody::Replay")
                .field("chunks", &chunks.len())
                .finish_non_exhaustive(),
            ReplayBody::Stream { .. } => {
                f.debug_struct("ReplayBody::Stream").finish_non_exhaustive()
            }
            ReplayBody::Recorded { .. } => f
                .debug_struct("ReplayBody::Recorded")
                .finish_non_exhaustive(),
        }
    }
}
