//! Payment example service: a simulated payment processor with fault injection.
//!
//! Charges are idempotent on the `Idempotency-Key` header, so the retries a
//! sidecar makes never charge twice. The processor is simulated, and its
//! failure rate, latency and decline limit can be changed at run time through
//! `GET`/`PUT /admin/faults` on the service's own port, to demonstrate
//! retries, timeouts and circuit breaking.
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
use service_kit::telemetry::ServiceTelemetry;
use service_kit::{Db, Migrations, db::DbError};
use utoipa::OpenApi;

pub mod config;
pub mod faults;
mod payments;
mod state;

pub use config::Config;
pub use faults::{FaultReport, FaultSettings, FaultUpdate};
pub use payments::{ChargeRequest, Payment, PaymentList};

use state::AppState;

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The payment service's migrations.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// Why the payment service stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings in the environment are unusable.
    #[error("invalid configuration")]
    Config(#[from] service_kit::env::EnvError),
    /// The database could not be opened or migrated.
    #[error("database")]
    Db(#[from] DbError),
    /// Serving failed.
    #[error("serving failed")]
    Serve(#[source] std::io::Error),
}

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
    let url =
        service_kit::db::database_url(config.database_url.as_deref(), &config.data_dir, "payment");
    let telemetry = config.telemetry;
    let db = Db::open(&url, MIGRATIONS)
        .await?
        .with_telemetry(telemetry.clone());
    let state = AppState {
        db: db.clone(),
        faults: Arc::new(faults::Faults::new(config.faults)),
    };
    let result = service_kit::server::serve(listener, router(state, &telemetry), shutdown).await;
    db.close().await;
    service_kit::telemetry::flush(&telemetry).await;
    result.map_err(Error::Serve)
}

fn router(state: AppState, telemetry: &ServiceTelemetry) -> Router {
    let api = Router::new()
        .route("/v1/payments", post(payments::charge).get(payments::list))
        .route("/v1/payments/{id}", get(payments::get))
        .route("/v1/payments/{id}/refund", post(payments::refund))
        .route(
            "/admin/faults",
            get(faults::get_faults).put(faults::put_faults),
        )
        .with_state(state.clone());
    let api = service_kit::server::traced(api, telemetry);
    service_kit::server::finish(
        api.merge(service_kit::health::routes(state.db))
            .merge(service_kit::openapi::routes(ApiDoc::openapi())),
    )
}
