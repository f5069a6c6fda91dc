//! The transactional outbox: domain events written with the state change that
//! caused them, published to RabbitMQ by a relay.
//!
//! The relay publishes unpublished events in outbox order, one at a time, each
//! waiting for the broker's publisher confirm before it is marked sent. An
//! event is therefore delivered at least once (a crash between the confirm
//! and the mark sends it again; consumers deduplicate on `event_id`, also the
//! AMQP `message_id`), and the events of one order arrive in the order they
//! happened. Without `AMQP_URL` the events stay in the table, readable at
//! `GET /v1/outbox`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};
use service_kit::extract::QueryMap;
use service_kit::{Db, Problem, ProblemDetails, now_millis};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::state::AppState;

/// The topic exchange events are published to; the routing key is the event type.
pub const EXCHANGE: &str = "weir.orders";

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
    /// When the broker confirmed it; absent while pending.
    pub published_at_ms: Option<i64>,
}

/// A list of outbox entries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutboxList {
    /// The entries in outbox order.
    pub items: Vec<OutboxEvent>,
}

type Row = (i64, String, String, String, String, i64, Option<i64>);

/// List outbox entries.
#[utoipa::path(get, path = "/v1/outbox", tag = "outbox",
    params(
        ("status" = Option<String>, Query, description = "`pending`, `sent` or `all` (default)"),
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
    let filter = match query.string("status").unwrap_or("all") {
        "pending" => " AND published_at IS NULL",
        "sent" => " AND published_at IS NOT NULL",
        "all" => "",
        _ => return Err(Problem::invalid("status", "must be pending, sent or all")),
    };
    let limit = query.int("limit", 1, 500)?.unwrap_or(100);
    let sql = format!(
        "SELECT id, event_id, order_id, event_type, payload, created_at, published_at FROM outbox \
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
            |(seq, event_id, order_id, event_type, payload, created_at_ms, published_at_ms)| {
                OutboxEvent {
                    seq,
                    event_id,
                    order_id,
                    event_type,
                    payload: serde_json::from_str(&payload)
                        .unwrap_or(serde_json::Value::String(payload)),
                    created_at_ms,
                    published_at_ms,
                }
            },
        )
        .collect();
    Ok(Json(OutboxList { items }))
}

/// Why a relay session ended.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("broker")]
    Broker(#[from] lapin::Error),
    #[error("database")]
    Db(#[from] sqlx::Error),
    #[error("broker refused event {0}")]
    Nacked(String),
}

/// Publishes outbox events to RabbitMQ until aborted, reconnecting after failures.
pub(crate) async fn relay(db: Db, amqp_url: String, wake: Arc<Notify>, poll: Duration) {
    let mut delay = Duration::from_millis(200);
    loop {
        match session(&db, &amqp_url, &wake, poll).await {
            Ok(()) => delay = Duration::from_millis(200),
            Err(error) => {
                tracing::warn!(error = %service_kit::server::error_chain(&error), "outbox relay interrupted, reconnecting");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn session(db: &Db, url: &str, wake: &Notify, poll: Duration) -> Result<(), RelayError> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    tracing::info!(exchange = EXCHANGE, "outbox relay connected");
    loop {
        let published = publish_pending(db, &channel).await?;
        if published == 0 {
            // Woken by new events, or polled in case another process wrote some.
            let _ = tokio::time::timeout(poll, wake.notified()).await;
        }
    }
}

/// Publishes one batch in order; returns how many were published.
async fn publish_pending(db: &Db, channel: &Channel) -> Result<usize, RelayError> {
    let batch: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT id, event_id, event_type, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 100",
    )
    .fetch_all(db.pool())
    .await?;
    let count = batch.len();
    for (seq, event_id, event_type, payload) in batch {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(event_id.clone().into())
            .with_type(event_type.clone().into());
        let confirm = channel
            .basic_publish(
                EXCHANGE.into(),
                event_type.into(),
                BasicPublishOptions::default(),
                payload.as_bytes(),
                properties,
            )
            .await?
            .await?;
        if !confirm.is_ack() {
            return Err(RelayError::Nacked(event_id));
        }
        sqlx::query("UPDATE outbox SET published_at = $1 WHERE id = $2")
            .bind(now_millis())
            .bind(seq)
            .execute(db.pool())
            .await?;
        tracing::debug!(%event_id, seq, "event published");
    }
    Ok(count)
}
