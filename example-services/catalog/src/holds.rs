//! How a reservation ends: committed (sold), released (order failed) or
//! expired (nobody came back in time). Each is a state change guarded by
//! `status = 'held'`, so it happens once however often it is requested, and
//! releasing or expiring returns the stock in the same transaction.

use axum::Json;
use axum::extract::{Path, State};
use service_kit::{Problem, ProblemDetails, now_millis};
use sqlx::{Any, Transaction};

use crate::reservations::{COMMITTED, EXPIRED, HELD, RELEASED, Reservation, load_in};
use crate::state::AppState;

/// Commit a held reservation: the stock is sold. Idempotent.
#[utoipa::path(post, path = "/v1/reservations/{id}/commit", tag = "reservations",
    params(("id" = String, Path, description = "Reservation id")),
    responses(
        (status = 200, body = Reservation),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "Released or expired", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn commit(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Reservation>, Problem> {
    let db = state.db.clone();
    db.traced("UPDATE", "reservations", commit_in_db(state, id))
        .await
}

/// The database work of [`commit`], traced as one `UPDATE reservations` span.
async fn commit_in_db(state: AppState, id: String) -> Result<Json<Reservation>, Problem> {
    let now = now_millis();
    let mut tx = state.db.begin().await?;
    let updated = sqlx::query(
        "UPDATE reservations SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4 AND expires_at > $2",
    )
    .bind(COMMITTED)
    .bind(now)
    .bind(&id)
    .bind(HELD)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 {
        let reservation = load_in(&mut tx, &id)
            .await?
            .ok_or_else(|| Problem::internal("reservation vanished"))?;
        tx.commit().await?;
        return Ok(Json(reservation));
    }
    let Some(current) = load_in(&mut tx, &id).await? else {
        return Err(Problem::no_such("reservation", &id));
    };
    match current.status.as_str() {
        COMMITTED => Ok(Json(current)),
        HELD => {
            // Past its expiry but not swept yet: expire it now, stock goes back.
            expire_in(&mut tx, &id, now).await?;
            tx.commit().await?;
            Err(Problem::conflict(
                "reservation-expired",
                format!("reservation {id} expired before commit"),
            ))
        }
        other => Err(Problem::conflict(
            "reservation-not-held",
            format!("reservation {id} is {other} and cannot be committed"),
        )),
    }
}

/// Release a held reservation: its stock returns. Idempotent.
#[utoipa::path(post, path = "/v1/reservations/{id}/release", tag = "reservations",
    params(("id" = String, Path, description = "Reservation id")),
    responses(
        (status = 200, body = Reservation),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "Already committed", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn release(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Reservation>, Problem> {
    let db = state.db.clone();
    db.traced("UPDATE", "reservations", release_in_db(state, id))
        .await
}

/// The database work of [`release`], traced as one `UPDATE reservations` span.
async fn release_in_db(state: AppState, id: String) -> Result<Json<Reservation>, Problem> {
    let mut tx = state.db.begin().await?;
    if end_hold(&mut tx, &id, RELEASED, now_millis()).await? {
        let reservation = load_in(&mut tx, &id)
            .await?
            .ok_or_else(|| Problem::internal("reservation vanished"))?;
        tx.commit().await?;
        tracing::info!(reservation = %id, "reservation released");
        return Ok(Json(reservation));
    }
    let Some(current) = load_in(&mut tx, &id).await? else {
        return Err(Problem::no_such("reservation", &id));
    };
    match current.status.as_str() {
        COMMITTED => Err(Problem::conflict(
            "reservation-committed",
            format!("reservation {id} is committed and cannot be released"),
        )),
        _ => Ok(Json(current)),
    }
}

/// Marks a held reservation `expired` and returns its stock; `false` if it was not held.
pub(crate) async fn expire_in(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    end_hold(tx, id, EXPIRED, now).await
}

/// Moves a held reservation to `status` and returns its stock to the products.
async fn end_hold(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    status: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE reservations SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
    )
    .bind(status)
    .bind(now)
    .bind(id)
    .bind(HELD)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    let lines: Vec<(String, i64)> =
        sqlx::query_as("SELECT product_id, quantity FROM reservation_items WHERE reservation_id = $1 ORDER BY product_id")
            .bind(id)
            .fetch_all(&mut **tx)
            .await?;
    for (product_id, quantity) in lines {
        // A product deleted meanwhile simply does not get its stock back.
        sqlx::query("UPDATE products SET stock = stock + $1, updated_at = $2 WHERE id = $3")
            .bind(quantity)
            .bind(now)
            .bind(&product_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(true)
}
