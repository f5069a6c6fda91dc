//! The admin listener: probes, metrics, effective config, operations, and
//! the live dashboard ([`dashboard`]).
//!
//! It runs on its own address so that probes and scrapes never compete with
//! traffic, and so it can be kept off the public network. Every request first
//! passes [`AdminAccess`] (its `Host`, and for mutating endpoints its origin
//! and bearer token; see `access.rs`).

mod access;
pub mod dashboard;

pub use access::{AdminAccess, AdminToken, HostPattern, TOKEN_ENV, TOKEN_FILE_ENV};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::problem::Problem;
use crate::reload::ReloadReport;
use crate::server::{ConnInfo, Handler, RequestBody, ServeOptions};
use crate::shutdown::Shutdown;

/// Produces a JSON document on demand (effective config, breaker state…).
pub type JsonSource = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Runs a reload; `Ok` names the changes that wait for a restart, `Err`
/// carries the reasons the new config was refused.
pub type ReloadHook = Arc<dyn Fn() -> Result<ReloadReport, String> + Send + Sync>;

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    pub registry: Arc<Registry>,
    /// Set once listeners are bound and config is loaded; cleared on shutdown.
    pub ready: Arc<AtomicBool>,
    /// `GET /config`: the effective config with secrets redacted.
    pub config: JsonSource,
    /// `POST /reload`, when the component supports it.
    pub reload: Option<ReloadHook>,
    /// Further `GET` endpoints returning JSON, by path (e.g. `/state`).
    pub extra: BTreeMap<&'static str, JsonSource>,
    /// Which hosts, origins and tokens are accepted.
    pub access: AdminAccess,
    /// `GET /dashboard…`, when the component has one.
    pub dashboard: Option<Arc<dashboard::Dashboard>>,
}

impl AdminState {
    pub fn new(registry: Arc<Registry>, config: JsonSource) -> Self {
        Self {
            registry,
            ready: Arc::new(AtomicBool::new(false)),
            config,
            reload: None,
            extra: BTreeMap::new(),
            access: AdminAccess::local_only(),
            dashboard: None,
        }
    }
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(body::full(
        serde_json::to_vec_pretty(value).unwrap_or_default(),
    ));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn text(status: StatusCode, content_type: &'static str, s: String) -> Response<Body> {
    let mut resp = Response::new(body::full(s));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

#[derive(Clone)]
struct AdminHandler(Arc<AdminState>);

impl Handler for AdminHandler {
    async fn handle(self, req: Request<RequestBody>, conn: Arc<ConnInfo>) -> Response<Body> {
        if let Err(problem) = self
            .0
            .access
            .check(req.method(), req.uri(), req.headers(), conn.local)
            .await
        {
            tracing::warn!(
                remote = %conn.remote,
                method = %req.method(),
                path = req.uri().path(),
                refused = problem.slug(),
                "admin request refused"
            );
            return (*problem).into_response();
        }
        if req.method() == Method::POST
            && req.uri().path() == "/reload"
            && let Some(hook) = self.0.reload.clone()
        {
            // Building a large config takes a while: keep it off the async
            // workers so traffic on the same runtime is not stalled.
            let outcome = tokio::task::spawn_blocking(move || hook())
                .await
                .unwrap_or_else(|e| Err(format!("reload task failed: {e}")));
            return reload_response(outcome);
        }
        if let Some(d) = &self.0.dashboard
            && let Some(resp) = d.handle(req.method(), req.uri().path()).await
        {
            return resp;
        }
        route(&self.0, &req)
    }
}

fn route(state: &AdminState, req: &Request<RequestBody>) -> Response<Body> {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/readyz") => {
            if state.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready\n".into(),
                )
            }
        }
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            crate::metrics::encode_text(&state.registry),
        ),
        (&Method::GET, "/config") => json(StatusCode::OK, &(state.config)()),
        (&Method::POST, "/reload") => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found").into_response()
        }
        (&Method::GET, p) if state.extra.contains_key(p) => {
            json(StatusCode::OK, &(state.extra[p])())
        }
        (_, "/healthz" | "/readyz" | "/metrics" | "/config" | "/reload") => Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
        )
        .into_response(),
        _ => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found")
            .detail(format!("no admin endpoint at {path}"))
            .into_response(),
    }
}

/// `{"status": "reloaded"}` when the whole file is in effect; otherwise
/// `{"status": "restart-required", "restart_required": [fields…]}`: the rest
/// of the file is in effect, but those fields keep their running value until
/// a restart, which must not be mistaken for a full reload.
fn reload_response(outcome: Result<ReloadReport, String>) -> Response<Body> {
    match outcome {
        Ok(report) if report.fully_applied() => {
            json(StatusCode::OK, &serde_json::json!({"status": "reloaded"}))
        }
        Ok(report) => json(
            StatusCode::OK,
            &serde_json::json!({
                "status": "restart-required",
                "detail": "the new configuration is in effect except for these fields, which keep their running value until the process restarts",
                "restart_required": report.restart_required,
            }),
        ),
        Err(reason) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "config-invalid",
            "New configuration refused",
        )
        .detail(reason)
        .into_response(),
    }
}

/// Serves the admin endpoints on `listener` until `shutdown`.
pub async fn serve_admin(listener: TcpListener, state: AdminState, shutdown: Shutdown) {
    let opts = ServeOptions {
        drain: std::time::Duration::from_secs(1),
        ..ServeOptions::default()
    };
    crate::server::serve(listener, opts, AdminHandler(Arc::new(state)), shutdown).await;
}
