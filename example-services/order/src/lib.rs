//! Order example service: orders placed as an orchestrated saga.
//!
//! `POST /v1/orders` creates a pending order, reserves its stock in the
//! catalog, charges the payment service and then confirms the order and
//! commits the reservation; a declined payment releases the stock and fails
//! the order (compensation). Each step's outcome is recorded, so a crash
//! anywhere is finished on restart without stock left reserved or a second
//! charge. Domain events go through a transactional outbox to RabbitMQ,
//! Kafka, both or neither (`docs/events.md`).
//!
//! # Layout
//!
//! - [`config`]: settings, from code or the environment.
//! - [`saga`]: the orchestrator, its steps and recovery.
//! - `peers`: calls to catalog and payment with bounded retries.
//! - [`catalog_api`]: the saga's catalog calls over gRPC or REST (`CATALOG_API`).
//! - `store`: orders, saga log and outbox in one transaction per change.
//! - [`outbox`]: the outbox listing and the relays to RabbitMQ and Kafka.
//! - `orders`: the HTTP handlers.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use service_kit::Migrations;
use utoipa::OpenApi;

pub mod catalog_api;
pub mod config;
pub mod model;
mod orders;
pub mod outbox;
mod peers;
pub mod saga;
mod state;
mod store;

pub use catalog_api::CatalogApi;
pub use config::Config;
pub use model::{
    COMPENSATING, CONFIRMED, FAILED, Order, OrderLine, OrderList, PENDING, PlaceOrder,
    REFUND_COMPLETED, REFUND_NOT_NEEDED, REFUND_PENDING, SagaLog, SagaLogEntry,
};
pub use outbox::{EVENT_SCHEMA_VERSION, EXCHANGE, OutboxEvent, OutboxList};
pub use saga::SagaStep;

use saga::Saga;
use state::AppState;

/// The order service's migrations.
pub const MIGRATIONS: Migrations = service_kit::migrations!();

/// Why the order service stopped (the error all the example services share).
pub use service_kit::ServiceError as Error;

/// The order service's OpenAPI document, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weir order",
        description = "Orders placed as an orchestrated saga over catalog and payment."
    ),
    paths(
        orders::place,
        orders::get,
        orders::list,
        orders::saga_log,
        outbox::list
    ),
    components(schemas(service_kit::ProblemDetails, SagaStep))
)]
pub struct ApiDoc;

/// Serves the order service on `listener` until `shutdown` completes.
///
/// Opens (and migrates) the database, then in the background recovers
/// pending orders (at once and every `recovery_interval`) and relays outbox
/// events to RabbitMQ (with `amqp_url`) and to Kafka (with `kafka_brokers`).
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let telemetry = config.telemetry.clone();
    let db = service_kit::service::open_db(
        config.database_url.as_deref(),
        &config.data_dir,
        "order",
        MIGRATIONS,
        &telemetry,
    )
    .await?;
    let config = Arc::new(config);
    let mut wakers = outbox::Wakers::default();
    let amqp_wake = config.amqp_url.as_ref().map(|_| wakers.add());
    let kafka_wake = config.kafka_brokers.as_ref().map(|_| wakers.add());
    let saga = Arc::new(Saga::new(db.clone(), Arc::clone(&config), Arc::new(wakers)));

    let mut background = service_kit::server::TaskSet::default();
    background.spawn(saga::recovery_loop(
        Arc::clone(&saga),
        config.recovery_interval,
    ));
    if let (Some(url), Some(wake)) = (config.amqp_url.clone(), amqp_wake) {
        let bus = outbox::AmqpBus::new(url, config.amqp_exchange.clone(), telemetry.clone());
        background.spawn(outbox::relay(
            db.clone(),
            bus,
            wake,
            config.outbox_poll_interval,
        ));
    }
    if let (Some(brokers), Some(wake)) = (config.kafka_brokers.clone(), kafka_wake) {
        let bus = outbox::KafkaBus::new(
            brokers,
            config.kafka_topic.clone(),
            config.kafka_message_timeout,
            telemetry.clone(),
        );
        background.spawn(outbox::relay(
            db.clone(),
            bus,
            wake,
            config.outbox_poll_interval,
        ));
    }

    let state = AppState {
        db: db.clone(),
        saga,
    };
    service_kit::service::serve(
        listener,
        routes(state),
        ApiDoc::openapi(),
        db,
        &telemetry,
        background,
        shutdown,
    )
    .await
}

/// The service's own API routes; the shared stack is added by
/// [`service_kit::service::serve`].
fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/orders", get(orders::list).post(orders::place))
        .route("/v1/orders/{id}", get(orders::get))
        .route("/v1/orders/{id}/saga", get(orders::saga_log))
        .route("/v1/outbox", get(outbox::list))
        .with_state(state)
}
