//! `sidecar webhook`: the HTTPS server the API server calls.
//!
//! Routes:
//! - `POST /mutate`: inject pods annotated `weir.dev/inject: enabled`.
//! - `POST /mutate/namespace`: inject every pod not annotated `disabled`; the
//!   MutatingWebhookConfiguration sends pods here from namespaces labelled
//!   `weir.dev/inject=enabled` (the webhook cannot read namespaces itself).
//! - `GET /healthz`: alive.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use proxy_core::body::Body as CoreBody;
use proxy_core::server::{ConnInfo, ConnLimits, Handler, RequestBody, ServeOptions, serve};
use rustls::ServerConfig;
use tokio::net::TcpListener;

use crate::cli::InjectDefaults;
use crate::error::WebhookError;
use crate::options::InjectOptions;
use crate::webhook::certs::CertificateFiles;
use crate::webhook::review::review;

/// The API server sends objects of at most ~1.5 MiB; anything larger is not a review.
const MAX_BODY_BYTES: usize = 4 << 20;
const MAX_CONNECTIONS: usize = 512;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// In-flight reviews get this long after shutdown starts (the API server times out at 10s).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate files are checked for a renewal.
const CERT_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// `sidecar webhook`.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0:8443", env = "WEIR_WEBHOOK_LISTEN")]
    pub listen: SocketAddr,
    /// PEM certificate chain (the Secret made by deploy/k8s/webhook-certs.sh).
    #[arg(
        long,
        env = "WEIR_WEBHOOK_TLS_CERT",
        default_value = "/etc/weir-webhook/tls.crt"
    )]
    pub tls_cert: PathBuf,
    /// PEM private key.
    #[arg(
        long,
        env = "WEIR_WEBHOOK_TLS_KEY",
        default_value = "/etc/weir-webhook/tls.key"
    )]
    pub tls_key: PathBuf,
    #[command(flatten)]
    pub defaults: InjectDefaults,
}

/// Loads the certificate and key and serves until `shutdown` completes.
pub async fn run_webhook(
    args: WebhookArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WebhookError> {
    let certs = CertificateFiles::load(&args.tls_cert, &args.tls_key)?;
    let tls = certs.server_config()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| WebhookError::Bind {
            address: args.listen.to_string(),
            source,
        })?;
    tracing::info!(address = %args.listen, "admission webhook listening");
    let serve = serve_webhook(
        listener,
        Some(tls),
        args.defaults.to_options(false),
        shutdown,
    );
    tokio::pin!(serve);
    // A renewed Secret shows up in the mounted files within a minute or so;
    // checking every 30s keeps the old certificate at most that much longer.
    let mut tick = tokio::time::interval(CERT_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            result = &mut serve => return result,
            _ = tick.tick() => match certs.reload_if_changed() {
                Ok(true) => tracing::info!(cert = %args.tls_cert.display(), "serving a renewed certificate"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "renewed certificate not usable; keeping the previous one"),
            },
        }
    }
}

/// A rustls server config (ring provider) from PEM files, fixed at load time
/// ([`CertificateFiles`] is the reloadable form `run_webhook` uses).
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, WebhookError> {
    CertificateFiles::load(cert, key)?.server_config()
}

/// The webhook's connection limits: the serving function's defaults (head
/// deadline, idle bounds, header size) with fewer connections, since only
/// the API server calls it.
pub fn webhook_limits() -> ConnLimits {
    ConnLimits {
        max_connections: MAX_CONNECTIONS,
        header_read_timeout: HANDSHAKE_TIMEOUT,
        ..ConnLimits::default()
    }
}

/// Serves the webhook on `listener` (HTTPS with `tls`, plain HTTP without,
/// which only tests use) until `shutdown` completes, then lets in-flight
/// reviews finish for up to 10 s.
pub async fn serve_webhook(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    opts: InjectOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WebhookError> {
    serve_webhook_with_limits(listener, tls, opts, webhook_limits(), shutdown).await
}

/// [`serve_webhook`] with explicit connection limits.
///
/// The webhook is served by the same function as every gateway and sidecar
/// listener (proxy-core's `server::serve`): connection cap, TLS handshake and
/// head deadline, idle bounds, header limits, body read timeout and drain are
/// the same code. The certificate stays reloadable: `tls` resolves the
/// current certificate on each handshake ([`CertificateFiles`]).
pub async fn serve_webhook_with_limits(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    opts: InjectOptions,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WebhookError> {
    let serve_opts = ServeOptions {
        limits,
        tls: tls.map(|t| Arc::new(ArcSwap::new(t))),
        drain: DRAIN_TIMEOUT,
        active_connections: None,
    };
    let (trigger, stop) = proxy_core::shutdown::channel();
    let serve = serve(listener, serve_opts, WebhookHandler(Arc::new(opts)), stop);
    tokio::pin!(serve);
    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        () = &mut serve => return Ok(()),
        () = &mut shutdown => {}
    }
    trigger.trigger();
    serve.await;
    Ok(())
}

/// The webhook's routes as a request handler for the shared serving function.
#[derive(Clone)]
struct WebhookHandler(Arc<InjectOptions>);

impl Handler for WebhookHandler {
    async fn handle(self, req: Request<RequestBody>, _conn: Arc<ConnInfo>) -> Response<CoreBody> {
        handle(req, &self.0).await.map(proxy_core::body::boxed)
    }
}

type Body = Full<Bytes>;

/// Every response carries `x-weir-request-id`, and problem documents name it,
/// so an error seen in `kubectl` output can be found in the webhook's log.
async fn handle(req: Request<RequestBody>, opts: &InjectOptions) -> Response<Body> {
    let request_id = format!("{:016x}", fastrand::u64(..));
    let mut response = route(req, opts, &request_id).await;
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-weir-request-id", value);
    }
    response
}

async fn route(
    req: Request<RequestBody>,
    opts: &InjectOptions,
    request_id: &str,
) -> Response<Body> {
    let all = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => return text(StatusCode::OK, "ok\n"),
        (&Method::POST, "/mutate") => false,
        (&Method::POST, "/mutate/namespace") => true,
        (_, "/mutate" | "/mutate/namespace" | "/healthz") => {
            return problem(
                request_id,
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "method not allowed",
            );
        }
        _ => {
            return problem(
                request_id,
                StatusCode::NOT_FOUND,
                "not-found",
                "no such route",
            );
        }
    };
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return problem(
                request_id,
                StatusCode::BAD_REQUEST,
                "bad-admission-review",
                &format!("cannot read the body (limit {MAX_BODY_BYTES} bytes): {e}"),
            );
        }
    };
    let opts = if all {
        InjectOptions {
            all: true,
            ..opts.clone()
        }
    } else {
        opts.clone()
    };
    match review(&body, &opts) {
        Ok(response) => {
            let bytes = serde_json::to_vec(&response).unwrap_or_default();
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(bytes)))
                .unwrap_or_default()
        }
        Err(e) => problem(
            request_id,
            StatusCode::BAD_REQUEST,
            "bad-admission-review",
            &e.to_string(),
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_default()
}

/// RFC 9457 problem details, like every error Weir generates itself.
fn problem(request_id: &str, status: StatusCode, slug: &str, detail: &str) -> Response<Body> {
    tracing::warn!(
        request_id,
        status = status.as_u16(),
        detail,
        "rejected request"
    );
    let body = serde_json::json!({
        "type": format!("https://weir.dev/problems/{slug}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail,
        "request_id": request_id,
    });
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/problem+json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(&body).unwrap_or_default(),
        )))
        .unwrap_or_default()
}
