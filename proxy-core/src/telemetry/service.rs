//! Tracing for the example services (catalog, order, payment): one shared
//! helper instead of three copies.
//!
//! [`ServiceTelemetry::layer`] is a plain tower layer (no axum types): it opens
//! a SERVER span per request from the incoming headers and runs the handler
//! with that span as the *current* OpenTelemetry context. Inside a handler,
//! [`ServiceTelemetry::inject_current`] writes that context into an outgoing
//! request, and [`ServiceTelemetry::db_span`] / [`ServiceTelemetry::span`]
//! open child spans for the handler's own work.
//!
//! The current context follows the handler's future across `.await`s; it does
//! not follow work moved to `tokio::spawn` (pass [`ServiceTelemetry::current`]
//! along and use `opentelemetry::context::FutureExt::with_context` there).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::HeaderMap;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use tower::{Layer, Service};

use super::config::{TelemetryConfig, TelemetrySettings};
use super::init::{Telemetry, TelemetryError};
use super::propagation::Propagation;
use super::spans::{ActiveSpan, ServerSpanInfo};

/// Names the route of a request (`/v1/orders/{id}`) for `http.route`; with
/// axum: `|p| p.extensions.get::<MatchedPath>().map(|m| m.as_str().to_owned())`
/// (requires the layer to be added with `Router::route_layer`).
pub type RouteFn = Arc<dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync>;

/// A service's tracing handle. Cheap to clone.
#[derive(Clone)]
pub struct ServiceTelemetry {
    telemetry: Telemetry,
    route: Option<RouteFn>,
}

impl std::fmt::Debug for ServiceTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTelemetry")
            .field("telemetry", &self.telemetry)
            .finish_non_exhaustive()
    }
}

impl ServiceTelemetry {
    /// Wraps an existing handle (tests build one with any exporter).
    pub fn new(telemetry: Telemetry) -> Self {
        Self {
            telemetry,
            route: None,
        }
    }

    /// Starts tracing for a service from its `telemetry:` config section and
    /// the environment (`OTEL_*`, `POD_*`). No endpoint anywhere: tracing off.
    /// Must run inside a tokio runtime.
    pub fn init(
        config: &TelemetryConfig,
        default_name: &str,
        version: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ServiceTelemetryError> {
        let settings: TelemetrySettings = config
            .resolve("telemetry", default_name, version, env)
            .map_err(ServiceTelemetryError::Config)?;
        Ok(Self::new(Telemetry::init(&settings)?))
    }

    /// Adds a route namer used for `http.route` and the span name.
    pub fn with_route_fn(mut self, route: RouteFn) -> Self {
        self.route = Some(route);
        self
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The tower layer that opens the per-request SERVER span.
    pub fn layer(&self) -> TraceLayer {
        TraceLayer {
            inner: self.clone(),
        }
    }

    /// The context of the request being handled (empty outside one).
    pub fn current(&self) -> Context {
        Context::current()
    }

    /// Writes the current context (`traceparent`, `tracestate`, `baggage`)
    /// into the headers of a request this service is about to send.
    pub fn inject_current(&self, headers: &mut HeaderMap) {
        if self.telemetry.is_enabled() {
            self.telemetry
                .propagation()
                .inject(&Context::current(), headers);
        }
    }

    /// A child span of the current context, e.g. `place_order` (INTERNAL).
    pub fn span(&self, name: impl Into<Cow<'static, str>>, attrs: Vec<KeyValue>) -> ActiveSpan {
        self.telemetry
            .child_span(&Context::current(), name, SpanKind::Internal, attrs)
    }

    /// A CLIENT span for one database statement, named `{operation} {table}`
    /// with `db.system.name`, `db.operation.name`, `db.collection.name`.
    pub fn db_span(
        &self,
        system: &'static str,
        operation: &'static str,
        table: &'static str,
    ) -> ActiveSpan {
        if !self.telemetry.is_enabled() {
            return self
                .telemetry
                .child_span(&Context::new(), "", SpanKind::Client, Vec::new());
        }
        self.telemetry.child_span(
            &Context::current(),
            format!("{operation} {table}"),
            SpanKind::Client,
            vec![
                KeyValue::new("db.system.name", system),
                KeyValue::new("db.operation.name", operation),
                KeyValue::new("db.collection.name", table),
            ],
        )
    }

    /// Runs `fut` with `span` as the current context, so spans and injected
    /// headers inside it are its children.
    pub async fn in_span<F: Future>(&self, span: &ActiveSpan, fut: F) -> F::Output {
        fut.with_context(span.context().clone()).await
    }
}

/// Writes the current OpenTelemetry context (W3C `traceparent`/`tracestate`,
/// `baggage`) into `headers`, replacing what is there, when there is one.
///
/// For code that copies trace headers from the incoming request onto outgoing
/// calls without holding a [`ServiceTelemetry`]: called inside a handler
/// wrapped by [`ServiceTelemetry::layer`], it makes the handler's SERVER span
/// the parent of the call; with tracing off (no current span) it changes
/// nothing, so the copied headers travel as they came.
pub fn inject_current_context(headers: &mut HeaderMap) {
    let cx = Context::current();
    if cx.has_active_span() {
        Propagation::default().inject(&cx, headers);
    }
}

/// Why a service's tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceTelemetryError {
    #[error("invalid telemetry configuration")]
    Config(#[source] crate::config::ConfigErrors),
    #[error(transparent)]
    Init(#[from] TelemetryError),
}

/// See [`ServiceTelemetry::layer`].
#[derive(Clone, Debug)]
pub struct TraceLayer {
    inner: ServiceTelemetry,
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, service: S) -> Self::Service {
        TraceService {
            telemetry: self.inner.clone(),
            service,
        }
    }
}

/// See [`ServiceTelemetry::layer`].
#[derive(Clone, Debug)]
pub struct TraceService<S> {
    telemetry: ServiceTelemetry,
    service: S,
}

impl<S, B, ResBody> Service<http::Request<B>> for TraceService<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let t = &self.telemetry;
        if !t.telemetry.is_enabled() {
            return Box::pin(self.service.call(req));
        }
        let (parts, body) = req.into_parts();
        let route = t.route.as_ref().and_then(|f| f(&parts));
        let mut span = t.telemetry.server_span(
            &parts,
            ServerSpanInfo {
                http_route: route.as_deref(),
                weir_route: None,
            },
        );
        let cx = span.context().clone();
        let fut = {
            // Current during the synchronous part of `call` too.
            let _guard = cx.clone().attach();
            self.service.call(http::Request::from_parts(parts, body))
        }
        .with_context(cx);
        Box::pin(async move {
            let result = fut.await;
            match &result {
                Ok(resp) => span.record_response(resp.status()),
                Err(_) => span.record_error("handler_error"),
            }
            result
        })
    }
}
