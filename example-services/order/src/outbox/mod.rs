//! The transactional outbox: domain events written with the state change that
//! caused them, published to the event buses (RabbitMQ, Kafka) by relays.
//!
//! Each configured bus has its own relay and its own mark of delivery per
//! event (`published_at` for RabbitMQ, `kafka_published_at` for Kafka), so
//! one bus being down never holds the other back, and each drains its own
//! backlog when its broker returns. An event is marked sent on a bus only
//! after that broker acknowledged it, so it is delivered at least once (a
//! crash between the acknowledgement and the mark sends it again; consumers
//! deduplicate on `event_id`). The events of one order are published in the
//! order they happened. Without a bus the events stay in the table, readable
//! at `GET /v1/outbox`. `docs/events.md` describes the buses and the event.
//!
//! # Layout
//!
//! - this file: the outbox listing and the event types;
//! - `relay`: reading the backlog, marking deliveries, reconnecting with backoff;
//! - `amqp`, `kafka`: publishing one batch to each broker.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use service_kit::Problem;
use service_kit::ProblemDetails;
use service_kit::extract::QueryMap;
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::state::AppState;

mod amqp;
mod kafka;
mod relay;

pub(crate) use amqp::AmqpBus;
pub(crate) use kafka::KafkaBus;
pub(crate) use relay::{Bus, relay};

/// The default topic exchange (RabbitMQ) and topic (Kafka) events go to.
/// On RabbitMQ the routing key is the event type; on Kafka the record key is
/// the order id.
pub const EXCHANGE: &str = "weir.orders";

/// The version of the event body (`schema_version`): raised when a field
/// changes meaning or goes away; adding a field keeps it.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// Wakes every relay when events were written (one [`Notify`] each, so a
/// wake-up that arrives while a relay is busy is kept for it).
#[derive(Debug, Default)]
pub(crate) struct Wakers(Vec<Arc<Notify>>);

impl Wakers {
    /// A new waker for one relay.
    pub(crate) fn add(&mut self) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        self.0.push(Arc::clone(&notify));
        notify
    }

    /// Tells each relay there is something to publish.
    pub(crate) fn notify_one(&self) {
        for notify in &self.0 {
            notify.notify_one();
        }
    }
}

/// An outbox entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutboxEvent {
    /// Position in the outbox (publication order).
    pub seq: i64,
    /// Unique event id (AMQP `message_id`).
    pub event_id: String,
    /// The order.
    pub order_id: String,
    /// `order.placed`, `order.confirmed` or `order.failed`.
    pub event_type: String,
    /// The event as published.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// When written, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When RabbitMQ confirmed it; absent while pending there.
    pub published_at_ms: Option<i64>,
    /// When Kafka acknowledged it (all in-sync replicas); absent while pending there.
    pub kafka_published_at_ms: Option<i64>,
}

/// A list of outbox entries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutboxList {
    /// The entries in outbox order.
    pub items: Vec<OutboxEvent>,
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

/// List outbox entries.
#[utoipa::path(get, path = "/v1/outbox", tag = "outbox",
    params(
        ("status" = Option<String>, Query, description = "`pending`, `sent` or `all` (default), on the bus `bus` names"),
        ("bus" = Option<String>, Query, description = "`rabbitmq` (default) or `kafka`"),
        ("order_id" = Option<String>, Query, description = "Only this order's events"),
        ("limit" = Option<i64>, Query, description = "1-500, default 100"),
    ),
    responses(
        (status = 200, body = OutboxList),
        (status = 422, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    query: QueryMap,
) -> Result<Json<OutboxList>, Problem> {
    let column = match query.string("bus").unwrap_or("rabbitmq") {
        "rabbitmq" => AmqpBus::COLUMN,
        "kafka" => KafkaBus::COLUMN,
        _ => return Err(Problem::invalid("bus", "must be rabbitmq or kafka")),
    };
    let filter = match query.string("status").unwrap_or("all") {
        "pending" => format!(" AND {column} IS NULL"),
        "sent" => format!(" AND {column} IS NOT NULL"),
        "all" => String::new(),
        _ => return Err(Problem::invalid("status", "must be pending, sent or all")),
    };
    let limit = query.int("limit", 1, 500)?.unwrap_or(100);
    let sql = format!(
        "SELECT id, event_id, order_id, event_type, payload, created_at, published_at, kafka_published_at FROM outbox \
         WHERE ($1 = '' OR order_id = $1){filter} ORDER BY id LIMIT $2"
    );
    let select = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(query.string("order_id").unwrap_or(""))
        .bind(limit)
        .fetch_all(state.db.pool());
    let rows: Vec<Row> = state.db.traced("SELECT", "outbox", select).await?;
    let items = rows
        .into_iter()
        .map(
            |(
                seq,
                event_id,
                order_id,
                event_type,
                payload,
                created_at_ms,
                published_at_ms,
                kafka_published_at_ms,
            )| {
                OutboxEvent {
                    seq,
                    event_id,
                    order_id,
                    event_type,
                    payload: serde_json::from_str(&payload)
                        .unwrap_or(serde_json::Value::String(payload)),
                    created_at_ms,
                    published_at_ms,
                    kafka_published_at_ms,
                }
            },
        )
        .collect();
    Ok(Json(OutboxList { items }))
}
