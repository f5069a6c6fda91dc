//! Catalog example service: products and stock reservations.
//!
//! The catalog owns products (price in minor units, stock) and the
//! reservations that hold stock for orders. Reads come in two API versions:
//! v1 with a flat price (`price_minor`, `currency`) and v2 with
//! `price: {amount, currency}`, a deliberate breaking change for the gateway's
//! version routing to act on.
//!
//! # Layout
//!
//! - [`config`]: settings, from code or the environment.
//! - `products`, `reservations`, `holds`: the handlers and their SQL.
//! - [`sweeper`]: expiry of reservations nobody committed.
//! - [`grpc`]: the same API over gRPC (`weir.catalog.v1`, from
//!   `proto/weir/catalog/v1/catalog.proto`) with health and reflection, on
//!   the same port.
//! - [`events`]: order events consumed from RabbitMQ and/or Kafka into the
//!   units-sold read model shown by v2.
//! - `seed`: the demo products loaded into an empty catalog.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use service_kit::Migrations;
use utoipa::OpenApi;

pub mod admin;
pub mod config;
pub mod events;
pub mod grpc;
mod holds;
pub mod model;
mod products;
pub mod reservations;
mod seed;
mod state;
pub mod sweeper;

pub use config::Config;
pub use model::{Price, Product, ProductInput, ProductPage, ProductV2};
pub use reservations::{Reservation, ReservationLine, ReservationRequest, ReservedItem};

use state::AppState;

/// The catalog's migrations.
pub const MIGRATIONS: Migrations = service_kit::migrations!();

/// Why the catalog stopped (the error all the example services share).
pub use service_kit::ServiceError as Error;

/// The catalog's OpenAPI document, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weir catalog",
        description = "Products and stock reservations. v2 nests the price as `{amount, currency}`."
    ),
    paths(
        products::list_v1,
        products::get_v1,
        products::create,
        products::replace,
        products::delete,
        products::list_v2,
        products::get_v2,
        reservations::reserve,
        reservations::get,
        holds::commit,
        holds::release,
    ),
    components(schemas(service_kit::ProblemDetails))
)]
pub struct ApiDoc;

/// Serves the catalog on `listener` until `shutdown` completes: REST and,
/// for requests with a gRPC content type, the gRPC API ([`grpc`]).
///
/// Opens (and migrates) the database, seeds an empty catalog when configured,
/// and sweeps expired reservations and consumes order events (from the buses
/// configured) in the background while serving.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let telemetry = config.telemetry.clone();
    let db = service_kit::service::open_db(
        config.database_url.as_deref(),
        &config.data_dir,
        "catalog",
        MIGRATIONS,
        &telemetry,
    )
    .await?;
    if config.seed {
        seed::seed_if_empty(&db)
            .await
            .map_err(|source| Error::Setup {
                step: "seeding the catalog",
                source,
            })?;
    }
    let mut background = service_kit::server::TaskSet::default();
    background.spawn(sweeper::run(db.clone(), config.sweep_interval));
    let stats = Arc::new(events::EventStats::default());
    events::spawn(&config, &db, &stats, &mut background);
    let state = AppState {
        db: db.clone(),
        config: Arc::new(config),
        events: Arc::clone(&stats),
    };
    let grpc = grpc::routes(state.clone())
        .await
        .map_err(|e| Error::Serve(std::io::Error::other(e)))?;
    let apis = service_kit::service::Apis {
        rest: routes(state),
        grpc,
        doc: ApiDoc::openapi(),
    };
    service_kit::service::serve_with_grpc(listener, apis, db, &telemetry, background, shutdown)
        .await
}

/// The service's own API routes; the shared stack is added by
/// [`service_kit::service::serve`].
fn routes(state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/products",
            get(products::list_v1).post(products::create),
        )
        .route(
            "/v1/products/{id}",
            get(products::get_v1)
                .put(products::replace)
                .delete(products::delete),
        )
        .route("/v2/products", get(products::list_v2))
        .route("/v2/products/{id}", get(products::get_v2))
        .route("/v1/reservations", post(reservations::reserve))
        .route("/v1/reservations/{id}", get(reservations::get))
        .route("/v1/reservations/{id}/commit", post(holds::commit))
        .route("/v1/reservations/{id}/release", post(holds::release))
        .route(
            "/metrics",
            get(events::metrics::serve).with_state(Arc::clone(&state.events)),
        )
        .with_state(state)
}
