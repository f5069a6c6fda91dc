//! Payment example service: a simulated payment processor with fault injection.
//!
//! Charges are idempotent on the `Idempotency-Key` header, so the retries a
//! sidecar makes never charge twice. The processor is simulated, and its
//! failure rate, latency and decline limit can be changed at run time through
//! `GET`/`PUT /admin/faults` on the service's own port, to demonstrate
//! retries, timeouts and circuit breaking, when the service was started with
//! them on (`PAYMENT_FAULTS=enabled`; the demo does).
//!
//! # Layout
//!
//! - [`config`]: settings, from code or the environment.
//! - `payments`: charge, get, list, refund.
//! - [`faults`]: the fault knobs and the charge-request counter.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use service_kit::Migrations;
use utoipa::OpenApi;

pub mod config;
pub mod faults;
mod payments;
mod state;

pub use config::Config;
pub use faults::{FaultReport, FaultSettings, FaultUpdate};
pub use payments::{ChargeRequest, Payment, PaymentList};

use state::AppState;

/// The payment service's migrations.
pub const MIGRATIONS: Migrations = service_kit::migrations!();

/// Why the payment service stopped (the error all the example services share).
pub use service_kit::ServiceError as Error;

/// The payment service's OpenAPI document, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weir payment",
        description = "A simulated payment processor with fault injection."
    ),
    paths(
        payments::charge,
        payments::get,
        payments::list,
        payments::refund,
        faults::get_faults,
        faults::put_faults
    ),
    components(schemas(service_kit::ProblemDetails))
)]
pub struct ApiDoc;

/// Serves the payment service on `listener` until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let telemetry = config.telemetry;
    let db = service_kit::service::open_db(
        config.database_url.as_deref(),
        &config.data_dir,
        "payment",
        MIGRATIONS,
        &telemetry,
    )
    .await?;
    let state = AppState {
        db: db.clone(),
        faults: Arc::new(faults::Faults::new(config.faults_enabled, config.faults)),
    };
    service_kit::service::serve(
        listener,
        routes(state),
        ApiDoc::openapi(),
        db,
        &telemetry,
        service_kit::server::TaskSet::default(),
        shutdown,
    )
    .await
}

/// The service's own API routes; the shared stack is added by
/// [`service_kit::service::serve`].
fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/payments", post(payments::charge).get(payments::list))
        .route("/v1/payments/{id}", get(payments::get))
        .route("/v1/payments/{id}/refund", post(payments::refund))
        .route(
            "/admin/faults",
            get(faults::get_faults).put(faults::put_faults),
        )
        .with_state(state)
}
