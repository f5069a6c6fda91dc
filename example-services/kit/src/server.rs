//! The middleware stack every service shares, and serving with graceful shutdown.
//!
//! Layers run bottom to top on the way in (axum `docs/middleware.md`), so in
//! request order a request meets: the body limit, then [`request_context`]
//! (request id, tracing span, problem rendering), then the routes. Unknown
//! paths and methods answer with problems too, so a client never sees a bare
//! text error from us.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::problem::Problem;
use crate::telemetry::ServiceTelemetry;

/// Header carrying the request id, generated when the caller sent none.
pub const REQUEST_ID: &str = "x-request-id";

/// Largest request body the services accept (JSON documents are small).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The request id of the current request, available as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Opens a SERVER span per request to `api`'s routes (a child of the
/// caller's `traceparent`), named and attributed with the matched route
/// template (`http.route` = `/v1/orders/{id}`), and runs the handler with
/// it as the current context, so its queries and calls are its children.
///
/// Added with `route_layer` because only then has routing found the
/// template; apply it to the API routes only, before merging `/healthz` and
/// friends, so probes do not start a trace every few seconds. With tracing
/// off the router is returned as it was.
pub fn traced(api: Router, telemetry: &ServiceTelemetry) -> Router {
    if !telemetry.telemetry().is_enabled() {
        return api;
    }
    let layer = telemetry
        .clone()
        .with_route_fn(Arc::new(|parts: &axum::http::request::Parts| {
            parts
                .extensions
                .get::<MatchedPath>()
                .map(|path| path.as_str().to_owned())
        }))
        .layer();
    api.route_layer(layer)
}

/// Wraps a service's routes in the shared stack: problem fallbacks, request
/// context and the body limit.
pub fn finish(routes: Router) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(request_context))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests
/// in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "listening");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn not_found() -> Problem {
    Problem::not_found("no route matches this path")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
    )
    .with_detail("this path does not accept the method")
}

/// Request id in and out, one tracing span per request, and the request id
/// added to every problem body.
async fn request_context(mut request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        request.headers_mut().insert(REQUEST_ID, value);
    }
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));

    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;

    if let Some(problem) = response.extensions_mut().remove::<Problem>() {
        let mut problem = problem;
        problem.request_id = Some(request_id.clone());
        let rendered = problem.render();
        let (mut parts, body) = rendered.into_parts();
        // Keep headers the handler set (Retry-After, Location…) on the re-rendered body.
        for (name, value) in response.headers() {
            if name != axum::http::header::CONTENT_LENGTH {
                parts.headers.entry(name).or_insert_with(|| value.clone());
            }
        }
        response = Response::from_parts(parts, body);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let _entered = span.enter();
    tracing::info!(
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request finished"
    );
    response.into_response()
}

/// Completes on SIGINT or SIGTERM, for the service binaries.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}

/// An error with its chain of causes, `a: b: c`, for a binary's last words.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Background tasks of a running service, aborted when dropped, so a
/// service whose `run` future is dropped (a crash in tests) leaves nothing behind.
#[derive(Debug, Default)]
pub struct TaskSet(Vec<tokio::task::JoinHandle<()>>);

impl TaskSet {
    /// Spawns `task` and keeps its handle.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task));
    }
}

impl Drop for TaskSet {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
