//! Stock reservations: stock set aside for an order until it is committed
//! (sold), released (order failed) or expires.
//!
//! Reserving is all-or-nothing in one transaction. Each line is a conditional
//! decrement, `UPDATE … SET stock = stock - q WHERE id = ? AND stock >= q`,
//! whose row count says whether the stock was there: under concurrency the
//! database serializes the decrements on the row, so stock never goes
//! negative and the last unit goes to exactly one order. Lines are applied in
//! product-id order so two reservations never wait on each other's rows.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use service_kit::extract::ApiJson;
use service_kit::{Problem, ProblemDetails, now_millis};
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

use crate::state::AppState;

/// Body of `POST /v1/reservations`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationRequest {
    /// The order the stock is for; one reservation per order (idempotency key).
    pub order_id: String,
    /// 1-50 lines, each product at most once.
    pub items: Vec<ReservationLine>,
}

/// One line of a reservation request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationLine {
    /// Product id.
    pub product_id: String,
    /// Units, 1-10000.
    pub quantity: i64,
}

/// Reservation states.
pub const HELD: &str = "held";
pub(crate) const COMMITTED: &str = "committed";
pub(crate) const RELEASED: &str = "released";
pub(crate) const EXPIRED: &str = "expired";

/// A reservation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Reservation {
    /// Reservation id.
    pub id: String,
    /// The order it belongs to.
    pub order_id: String,
    /// `held`, `committed`, `released` or `expired`.
    pub status: String,
    /// Sum of the lines at the prices when reserved, minor units.
    pub total_minor: i64,
    /// Currency of all lines.
    pub currency: String,
    /// When a held reservation expires, milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
    /// The reserved lines with their prices.
    pub items: Vec<ReservedItem>,
}

/// A reserved line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ReservedItem {
    /// Product id.
    pub product_id: String,
    /// Units.
    pub quantity: i64,
    /// Price per unit when reserved, minor units.
    pub unit_price_minor: i64,
    /// Currency.
    pub currency: String,
}

impl ReservationRequest {
    fn validate(&self) -> Result<(), Problem> {
        if self.order_id.trim().is_empty() || self.order_id.len() > 128 {
            return Err(Problem::invalid("order_id", "must be 1-128 characters"));
        }
        if self.items.is_empty() || self.items.len() > 50 {
            return Err(Problem::invalid("items", "must hold 1-50 lines"));
        }
        let mut seen = HashSet::new();
        for (i, line) in self.items.iter().enumerate() {
            if line.product_id.is_empty() || line.product_id.len() > 64 {
                return Err(Problem::invalid(
                    format!("items[{i}].product_id"),
                    "must be 1-64 characters",
                ));
            }
            if !seen.insert(line.product_id.as_str()) {
                return Err(Problem::invalid(
                    format!("items[{i}].product_id"),
                    "product listed twice",
                ));
            }
            if !(1..=10_000).contains(&line.quantity) {
                return Err(Problem::invalid(
                    format!("items[{i}].quantity"),
                    "must be between 1 and 10000",
                ));
            }
        }
        Ok(())
    }
}

/// Reserve stock for an order.
#[utoipa::path(post, path = "/v1/reservations", tag = "reservations",
    request_body = ReservationRequest,
    responses(
        (status = 201, description = "Reserved", body = Reservation),
        (status = 200, description = "This order already has a reservation (returned as is)", body = Reservation),
        (status = 409, description = "Not enough stock", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn reserve(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ReservationRequest>,
) -> Result<(StatusCode, Json<Reservation>), Problem> {
    request.validate()?;
    let db = state.db.clone();
    db.traced("INSERT", "reservations", reserve_in_db(state, request))
        .await
}

/// The database work of [`reserve`], traced as one `INSERT reservations` span.
async fn reserve_in_db(
    state: AppState,
    request: ReservationRequest,
) -> Result<(StatusCode, Json<Reservation>), Problem> {
    let now = now_millis();
    let ttl = i64::try_from(state.config.reservation_ttl.as_millis()).unwrap_or(i64::MAX);
    let id = uuid::Uuid::now_v7().to_string();
    let mut tx = state.db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO reservations (id, order_id, status, total_minor, currency, expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 0, '', $4, $5, $5) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(&id)
    .bind(&request.order_id)
    .bind(HELD)
    .bind(now.saturating_add(ttl))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        drop(tx);
        let existing = load_by_order(&state, &request.order_id).await?;
        return Ok((StatusCode::OK, Json(existing)));
    }

    let mut lines: Vec<(usize, &ReservationLine)> = request.items.iter().enumerate().collect();
    lines.sort_by(|a, b| a.1.product_id.cmp(&b.1.product_id));
    let mut total: i64 = 0;
    let mut currency: Option<String> = None;
    for (i, line) in lines {
        let taken: Option<(i64, String)> = sqlx::query_as(
            "UPDATE products SET stock = stock - $1, updated_at = $2 WHERE id = $3 AND stock >= $1 \
             RETURNING price_minor, currency",
        )
        .bind(line.quantity)
        .bind(now)
        .bind(&line.product_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((price, line_currency)) = taken else {
            return Err(shortage(&mut tx, i, line).await);
        };
        match &currency {
            Some(c) if *c != line_currency => {
                return Err(Problem::invalid(
                    "items",
                    "all products of one reservation must share a currency",
                ));
            }
            _ => currency = Some(line_currency.clone()),
        }
        total = total.saturating_add(price.saturating_mul(line.quantity));
        sqlx::query(
            "INSERT INTO reservation_items (reservation_id, product_id, quantity, unit_price_minor, currency) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(&line.product_id)
        .bind(line.quantity)
        .bind(price)
        .bind(&line_currency)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE reservations SET total_minor = $1, currency = $2 WHERE id = $3")
        .bind(total)
        .bind(currency.unwrap_or_default())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    let reservation = load_in(&mut tx, &id)
        .await?
        .ok_or_else(|| Problem::internal("reservation vanished"))?;
    tx.commit().await?;
    tracing::info!(reservation = %id, order = %request.order_id, total, "stock reserved");
    Ok((StatusCode::CREATED, Json(reservation)))
}

/// Why a conditional decrement touched no row: unknown product (`422`) or short stock (`409`).
async fn shortage(
    tx: &mut Transaction<'static, Any>,
    index: usize,
    line: &ReservationLine,
) -> Problem {
    let stock: Result<Option<(i64,)>, sqlx::Error> =
        sqlx::query_as("SELECT stock FROM products WHERE id = $1")
            .bind(&line.product_id)
            .fetch_optional(&mut **tx)
            .await;
    match stock {
        Ok(None) => Problem::invalid(
            format!("items[{index}].product_id"),
            format!("product {} does not exist", line.product_id),
        ),
        Ok(Some((available,))) => Problem::conflict(
            "insufficient-stock",
            format!(
                "product {} has {available} in stock, {} requested",
                line.product_id, line.quantity
            ),
        )
        .with("product_id", line.product_id.clone())
        .with("available", available)
        .with("requested", line.quantity),
        Err(e) => e.into(),
    }
}

/// Get a reservation.
#[utoipa::path(get, path = "/v1/reservations/{id}", tag = "reservations",
    params(("id" = String, Path, description = "Reservation id")),
    responses(
        (status = 200, body = Reservation),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Reservation>, Problem> {
    let db = state.db.clone();
    db.traced("SELECT", "reservations", get_in_db(state, id))
        .await
}

/// The database work of [`get`], traced as one `SELECT reservations` span.
async fn get_in_db(state: AppState, id: String) -> Result<Json<Reservation>, Problem> {
    let mut conn = state.db.pool().acquire().await?;
    load_in(&mut conn, &id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::no_such("reservation", &id))
}

async fn load_by_order(state: &AppState, order_id: &str) -> Result<Reservation, Problem> {
    let mut conn = state.db.pool().acquire().await?;
    let id: Option<(String,)> = sqlx::query_as("SELECT id FROM reservations WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((id,)) = id else {
        return Err(Problem::internal("reservation for order vanished"));
    };
    load_in(&mut conn, &id)
        .await?
        .ok_or_else(|| Problem::internal("reservation vanished"))
}

pub(crate) async fn load_in(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<Option<Reservation>, sqlx::Error> {
    let head: Option<(String, String, String, i64, String, i64)> = sqlx::query_as(
        "SELECT id, order_id, status, total_minor, currency, expires_at FROM reservations WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((id, order_id, status, total_minor, currency, expires_at_ms)) = head else {
        return Ok(None);
    };
    let items = sqlx::query_as::<_, ReservedItem>(
        "SELECT product_id, quantity, unit_price_minor, currency FROM reservation_items \
         WHERE reservation_id = $1 ORDER BY product_id",
    )
    .bind(&id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(Reservation {
        id,
        order_id,
        status,
        total_minor,
        currency,
        expires_at_ms,
        items,
    }))
}
