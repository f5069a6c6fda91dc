//! One live stream per open page: Server-Sent Events fed by a sampler that
//! runs only while someone listens.
//!
//! The sampler is a task that builds a frame every tick and publishes it on a
//! `watch` channel; every stream reads the latest frame (a slow page skips
//! frames instead of queueing them). When the last stream ends, the sampler
//! notices on its next tick and stops: with no page open the dashboard costs
//! nothing. A semaphore bounds the number of streams.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::stream;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::StreamBody;
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::Dashboard;
use crate::body::{self, Body, BoxError};
use crate::problem::Problem;

/// A published frame: the state document as one SSE event.
pub(super) type Published = Option<Arc<Bytes>>;

/// `GET /dashboard/events`.
pub(super) async fn events(dashboard: Arc<Dashboard>) -> Response<Body> {
    let Ok(permit) = dashboard.streams.clone().try_acquire_owned() else {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dashboard-streams-exhausted",
            "Too many dashboard streams",
        )
        .detail(format!(
            "at most {} dashboard pages may stream at once; close one and retry",
            dashboard.settings.max_streams
        ))
        .header(http::header::RETRY_AFTER, HeaderValue::from_static("5"))
        .into_response();
    };
    let rx = dashboard.tx.subscribe();
    ensure_sampler(&dashboard);
    // The page gets a frame at once, not a tick later.
    let first = dashboard.frame_now().await;
    let retry = Bytes::from_static(b"retry: 2000\n\n");
    let state = Stream {
        rx,
        _permit: permit,
        pending: vec![retry, sse(&first)],
    };
    let body = StreamBody::new(stream::unfold(state, next_frame));
    let mut resp = Response::new(body::boxed(body));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

struct Stream {
    rx: watch::Receiver<Published>,
    /// Returned to the semaphore when the page goes away (the body drops).
    _permit: OwnedSemaphorePermit,
    pending: Vec<Bytes>,
}

async fn next_frame(mut s: Stream) -> Option<(Result<Frame<Bytes>, BoxError>, Stream)> {
    if !s.pending.is_empty() {
        let b = s.pending.remove(0);
        return Some((Ok(Frame::data(b)), s));
    }
    loop {
        s.rx.changed().await.ok()?;
        let latest = s.rx.borrow_and_update().clone();
        if let Some(frame) = latest {
            return Some((Ok(Frame::data(sse(&frame))), s));
        }
    }
}

/// `event: state` with the document on one `data:` line (JSON text has no
/// raw newlines once compact).
fn sse(json: &Bytes) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 24);
    out.extend_from_slice(b"event: state\ndata: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Starts the sampler unless it runs.
fn ensure_sampler(dashboard: &Arc<Dashboard>) {
    if !dashboard.sampling.swap(true, Ordering::AcqRel) {
        tokio::spawn(sample(dashboard.clone()));
    }
}

/// Publishes a frame every tick while at least one stream listens.
async fn sample(dashboard: Arc<Dashboard>) {
    let mut tick = tokio::time::interval(dashboard.settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The stream that started us has just built a frame.
    tick.tick().await;
    loop {
        tick.tick().await;
        if dashboard.tx.receiver_count() == 0 {
            dashboard.sampling.store(false, Ordering::Release);
            // A stream that subscribed between the count and the store saw
            // the sampler running and did not start one: keep going for it.
            if dashboard.tx.receiver_count() == 0 || dashboard.sampling.swap(true, Ordering::AcqRel)
            {
                return;
            }
        }
        let frame = dashboard.build_frame().await;
        dashboard.tx.send_replace(Some(frame));
    }
}
