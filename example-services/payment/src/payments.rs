//! Charges and refunds.
//!
//! A charge is keyed by the caller's `Idempotency-Key`: the unique index on
//! the key makes the first insert the charge and every later request with the
//! same key, concurrent or not, a replay of it. A key sent again with a
//! different request is refused rather than silently answered with another
//! payment's result.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use service_kit::extract::{ApiJson, IdempotencyKey, QueryMap};
use service_kit::{Problem, ProblemDetails, now_millis};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::state::AppState;

const SUCCEEDED: &str = "succeeded";
const DECLINED: &str = "declined";
const REFUNDED: &str = "refunded";

/// Body of `POST /v1/payments`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    /// The order paid for.
    pub order_id: String,
    /// Amount in minor units, 1 to 10^12.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// The paying customer.
    pub customer_id: String,
}

/// A payment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Payment {
    /// Payment id.
    pub id: String,
    /// The order paid for.
    pub order_id: String,
    /// The paying customer.
    pub customer_id: String,
    /// Amount, minor units.
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// `succeeded`, `declined` or `refunded`.
    pub status: String,
    /// Why it was declined.
    pub decline_reason: Option<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// A list of payments.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentList {
    /// The payments, oldest first.
    pub items: Vec<Payment>,
}

const COLUMNS: &str = "id, order_id, customer_id, amount_minor, currency, status, decline_reason, created_at AS created_at_ms";

impl ChargeRequest {
    fn validate(&self) -> Result<(), Problem> {
        if self.order_id.trim().is_empty() || self.order_id.len() > 128 {
            return Err(Problem::invalid("order_id", "must be 1-128 characters"));
        }
        if self.customer_id.trim().is_empty() || self.customer_id.len() > 128 {
            return Err(Problem::invalid("customer_id", "must be 1-128 characters"));
        }
        if !(1..=1_000_000_000_000).contains(&self.amount_minor) {
            return Err(Problem::invalid(
                "amount_minor",
                "must be between 1 and 10^12",
            ));
        }
        if !(self.currency.len() == 3 && self.currency.chars().all(|c| c.is_ascii_uppercase())) {
            return Err(Problem::invalid(
                "currency",
                "must be a three-letter upper-case ISO 4217 code",
            ));
        }
        Ok(())
    }

    /// Fingerprint of what was asked, to catch a key reused for another request.
    fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for part in [
            self.order_id.as_str(),
            &self.amount_minor.to_string(),
            &self.currency,
            &self.customer_id,
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        hex::encode(hash.finalize())
    }
}

/// Charge a customer. Idempotent on `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/payments", tag = "payments",
    request_body = ChargeRequest,
    params(("Idempotency-Key" = String, Header, description = "Same key, same payment: a retry never charges twice")),
    responses(
        (status = 201, description = "Charged", body = Payment),
        (status = 200, description = "Replay of an earlier charge with this key", body = Payment),
        (status = 402, description = "Declined (final; retrying will not help)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "Key reused for a different request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Injected processor failure; nothing charged, safe to retry", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn charge(
    State(state): State<AppState>,
    key: Result<IdempotencyKey, Problem>,
    request: Result<ApiJson<ChargeRequest>, Problem>,
) -> Result<Response, Problem> {
    // Counted before validation: the counter is what the processor received.
    let faults = state.faults.on_charge_request();
    let IdempotencyKey(key) = key?;
    let ApiJson(request) = request?;
    request.validate()?;
    if faults.failure_rate > 0.0 && fastrand::f64() < faults.failure_rate {
        tracing::info!(%key, "injected processor failure");
        let mut response = Problem::unavailable(
            "processor-unavailable",
            "the payment processor failed (injected); nothing was charged",
        )
        .into_response();
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from_static("1"),
        );
        return Ok(response);
    }

    let fingerprint = request.fingerprint();
    let declined = faults
        .decline_over_minor
        .filter(|limit| request.amount_minor > *limit)
        .map(|limit| {
            format!(
                "amount {} exceeds the limit of {limit}",
                request.amount_minor
            )
        });
    let status = if declined.is_some() {
        DECLINED
    } else {
        SUCCEEDED
    };
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_millis();
    let insert = sqlx::query(
        "INSERT INTO payments (id, idempotency_key, request_hash, order_id, customer_id, amount_minor, currency, \
         status, decline_reason, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&id)
    .bind(&key)
    .bind(&fingerprint)
    .bind(&request.order_id)
    .bind(&request.customer_id)
    .bind(request.amount_minor)
    .bind(&request.currency)
    .bind(status)
    .bind(declined.clone())
    .bind(now)
    .execute(state.db.pool());
    let inserted = state.db.traced("INSERT", "payments", insert).await?;

    let (payment, replayed) = if inserted.rows_affected() == 1 {
        tracing::info!(payment = %id, order = %request.order_id, status, amount = request.amount_minor, "charge processed");
        (load(&state, &id).await?, false)
    } else {
        let select =
            sqlx::query_as("SELECT id, request_hash FROM payments WHERE idempotency_key = $1")
                .bind(&key)
                .fetch_optional(state.db.pool());
        let existing: Option<(String, String)> =
            state.db.traced("SELECT", "payments", select).await?;
        let Some((existing_id, existing_hash)) = existing else {
            return Err(Problem::internal("payment for idempotency key vanished"));
        };
        if existing_hash != fingerprint {
            return Err(Problem::conflict(
                "idempotency-key-reused",
                "this Idempotency-Key was used for a different request",
            )
            .with_field("Idempotency-Key"));
        }
        (load(&state, &existing_id).await?, true)
    };

    // The charge is on record before the delay: a caller that gives up and
    // retries finds it instead of charging again.
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    Ok(respond(payment, replayed))
}

fn respond(payment: Payment, replayed: bool) -> Response {
    let mut response = if payment.status == DECLINED {
        Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment-declined",
            "Payment declined",
        )
        .with_detail(
            payment
                .decline_reason
                .clone()
                .unwrap_or_else(|| "declined".into()),
        )
        .with("payment_id", payment.id.clone())
        .into_response()
    } else {
        let status = if replayed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        (status, Json(payment)).into_response()
    };
    if replayed {
        response.headers_mut().insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    response
}

async fn load(state: &AppState, id: &str) -> Result<Payment, Problem> {
    state
        .db
        .fetch_by_id("payments", COLUMNS, id)
        .await?
        .ok_or_else(|| Problem::no_such("payment", id))
}

/// Get a payment.
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses(
        (status = 200, body = Payment),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Payment>, Problem> {
    load(&state, &id).await.map(Json)
}

/// List the payments of an order.
#[utoipa::path(get, path = "/v1/payments", tag = "payments",
    params(("order_id" = String, Query, description = "The order")),
    responses(
        (status = 200, body = PaymentList),
        (status = 422, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    query: QueryMap,
) -> Result<Json<PaymentList>, Problem> {
    let order_id = query.required("order_id")?;
    let select = sqlx::query_as::<_, Payment>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE order_id = $1 ORDER BY id LIMIT 100"
    )))
    .bind(order_id)
    .fetch_all(state.db.pool());
    let items = state.db.traced("SELECT", "payments", select).await?;
    Ok(Json(PaymentList { items }))
}

/// Refund a payment in full. Idempotent.
#[utoipa::path(post, path = "/v1/payments/{id}/refund", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses(
        (status = 200, body = Payment),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "Declined payments cannot be refunded", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Injected processor failure; nothing refunded, safe to retry", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn refund(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let faults = state.faults.on_refund_request();
    if faults.refund_failure_rate > 0.0 && fastrand::f64() < faults.refund_failure_rate {
        tracing::info!(payment = %id, "injected refund failure");
        let mut response = Problem::unavailable(
            "processor-unavailable",
            "the payment processor failed (injected); nothing was refunded",
        )
        .into_response();
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from_static("1"),
        );
        return Ok(response);
    }
    let update = sqlx::query(
        "UPDATE payments SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
    )
    .bind(REFUNDED)
    .bind(now_millis())
    .bind(&id)
    .bind(SUCCEEDED)
    .execute(state.db.pool());
    let updated = state.db.traced("UPDATE", "payments", update).await?;
    let payment = load(&state, &id).await?;
    if updated.rows_affected() == 1 {
        tracing::info!(payment = %id, "payment refunded");
    }
    match payment.status.as_str() {
        REFUNDED => Ok(Json(payment).into_response()),
        other => Err(Problem::conflict(
            "payment-not-refundable",
            format!("payment {id} is {other}"),
        )),
    }
}
