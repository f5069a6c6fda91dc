//! The order tables: orders and lines, the saga log and the outbox.
//!
//! Every change of an order's state is one transaction that also appends to
//! the saga log and, when the status changes, writes the domain event to the
//! outbox. So the log and the events can never disagree with the order.

use serde_json::json;
use service_kit::messaging::TraceHeaders;
use service_kit::{Db, Problem, now_millis};
use sqlx::{Any, AnyConnection, Transaction};

use crate::model::{
    COMPENSATING, CONFIRMED, FAILED, Order, OrderLine, PENDING, PlaceOrder, SagaLogEntry,
};
use crate::outbox::EVENT_SCHEMA_VERSION;
use crate::saga::SagaStep;

#[derive(Debug, sqlx::FromRow)]
struct OrderRow {
    id: String,
    customer_id: String,
    status: String,
    saga_step: String,
    failure_reason: Option<String>,
    total_minor: Option<i64>,
    currency: Option<String>,
    reservation_id: Option<String>,
    payment_id: Option<String>,
    refund: Option<String>,
    attempts: i64,
    retry_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "id, customer_id, status, saga_step, failure_reason, total_minor, currency, \
                       reservation_id, payment_id, refund, attempts, retry_at, created_at, updated_at";

/// The reservation a successful reserve step produced.
#[derive(Debug, Clone)]
pub(crate) struct ReservationInfo {
    pub(crate) id: String,
    pub(crate) total_minor: i64,
    pub(crate) currency: String,
}

/// One step's recorded outcome and where the saga goes next.
#[derive(Debug, Clone)]
pub(crate) struct Transition {
    pub(crate) step: SagaStep,
    pub(crate) outcome: &'static str,
    pub(crate) detail: Option<String>,
    pub(crate) next: SagaStep,
    pub(crate) status: Option<&'static str>,
    pub(crate) failure_reason: Option<String>,
    pub(crate) reservation: Option<ReservationInfo>,
    pub(crate) payment_id: Option<String>,
    /// The order's new `refund` state, if this step changes it.
    pub(crate) refund: Option<&'static str>,
}

impl Transition {
    pub(crate) fn new(step: SagaStep, outcome: &'static str, next: SagaStep) -> Self {
        Self {
            step,
            outcome,
            detail: None,
            next,
            status: None,
            failure_reason: None,
            reservation: None,
            payment_id: None,
            refund: None,
        }
    }
}

/// What placing an order found.
pub(crate) enum Placed {
    /// A new pending order.
    New(Order),
    /// The order an earlier request with the same key placed.
    Existing(Order),
}

/// Inserts a pending order with its lines and the `order.placed` event, or
/// finds the order this idempotency key already placed.
pub(crate) async fn place(db: &Db, key: &str, request: &PlaceOrder) -> Result<Placed, Problem> {
    db.traced("INSERT", "orders", async {
        let fingerprint = request.fingerprint();
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_millis();
        let mut tx = db.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO orders (id, idempotency_key, request_hash, customer_id, status, saga_step, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&id)
        .bind(key)
        .bind(&fingerprint)
        .bind(&request.customer_id)
        .bind(PENDING)
        .bind(SagaStep::Reserve.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            drop(tx);
            let existing: Option<(String, String)> =
                sqlx::query_as("SELECT id, request_hash FROM orders WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_optional(db.pool())
                    .await?;
            let Some((existing_id, hash)) = existing else {
                return Err(Problem::internal("order for idempotency key vanished"));
            };
            if hash != fingerprint {
                return Err(Problem::conflict(
                    "idempotency-key-reused",
                    "this Idempotency-Key was used for a different order",
                )
                .with_field("Idempotency-Key"));
            }
            let mut conn = db.pool().acquire().await?;
            let order = load_in(&mut conn, &existing_id)
                .await?
                .ok_or_else(|| Problem::internal("order vanished"))?;
            return Ok(Placed::Existing(order));
        }
        for (line, item) in request.items.iter().enumerate() {
            sqlx::query("INSERT INTO order_items (order_id, line, product_id, quantity) VALUES ($1, $2, $3, $4)")
                .bind(&id)
                .bind(line as i64)
                .bind(&item.product_id)
                .bind(item.quantity)
                .execute(&mut *tx)
                .await?;
        }
        append_log(&mut tx, &id, "place", "succeeded", None, now).await?;
        let order = load_in(&mut tx, &id)
            .await?
            .ok_or_else(|| Problem::internal("order vanished"))?;
        append_event(&mut tx, &order, "order.placed", now).await?;
        tx.commit().await?;
        Ok(Placed::New(order))
    })
    .await
}

/// Records `transition` if the order is still at `transition.step`; returns
/// `false` when another driver moved it first. The next step starts with no
/// failed attempts and no retry scheduled.
pub(crate) async fn apply(
    db: &Db,
    order_id: &str,
    transition: &Transition,
) -> Result<bool, sqlx::Error> {
    db.traced("UPDATE", "orders", async {
        let now = now_millis();
        let mut tx = db.begin().await?;
        let (reservation_id, total, currency) = match &transition.reservation {
            Some(r) => (
                Some(r.id.clone()),
                Some(r.total_minor),
                Some(r.currency.clone()),
            ),
            None => (None, None, None),
        };
        let updated = sqlx::query(
            "UPDATE orders SET saga_step = $1, status = COALESCE($2, status), \
             failure_reason = COALESCE($3, failure_reason), reservation_id = COALESCE($4, reservation_id), \
             total_minor = COALESCE($5, total_minor), currency = COALESCE($6, currency), \
             payment_id = COALESCE($7, payment_id), updated_at = $8, \
             refund = COALESCE($12, refund), attempts = 0, retry_at = NULL \
             WHERE id = $9 AND saga_step = $10 AND (status = $11 OR status = $13)",
        )
        .bind(transition.next.as_str())
        .bind(transition.status)
        .bind(transition.failure_reason.clone())
        .bind(reservation_id)
        .bind(total)
        .bind(currency)
        .bind(transition.payment_id.clone())
        .bind(now)
        .bind(order_id)
        .bind(transition.step.as_str())
        .bind(PENDING)
        .bind(transition.refund)
        .bind(COMPENSATING)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        append_log(
            &mut tx,
            order_id,
            transition.step.as_str(),
            transition.outcome,
            transition.detail.as_deref(),
            now,
        )
        .await?;
        // Events tell the world how an order ended; `compensating` is on the way there.
        let event = match transition.status {
            Some(FAILED) => Some("order.failed"),
            Some(CONFIRMED) => Some("order.confirmed"),
            _ => None,
        };
        if let Some(event) = event
            && let Some(order) = load_in(&mut tx, order_id).await?
        {
            append_event(&mut tx, &order, event, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    })
    .await
}

/// Notes in the saga log that a step could not finish and will be retried,
/// counts the failed attempt, and schedules the next one at `retry_at` (ms
/// since epoch; `None`: the next recovery pass after the order went stale).
pub(crate) async fn log_stall(
    db: &Db,
    order_id: &str,
    step: SagaStep,
    detail: &str,
    retry_at: Option<i64>,
) -> Result<(), sqlx::Error> {
    db.traced("INSERT", "saga_log", async {
        let mut tx = db.begin().await?;
        append_log(
            &mut tx,
            order_id,
            step.as_str(),
            "retry_later",
            Some(detail),
            now_millis(),
        )
        .await?;
        sqlx::query(
            "UPDATE orders SET updated_at = $1, attempts = attempts + 1, retry_at = $2 \
             WHERE id = $3 AND saga_step = $4",
        )
        .bind(now_millis())
        .bind(retry_at)
        .bind(order_id)
        .bind(step.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
    .await
}

/// Ids of orders still in progress that are due: those without a scheduled
/// retry last touched at or before `stale`, and those whose retry is due at
/// `now`; oldest first.
pub(crate) async fn due(db: &Db, stale: i64, now: i64) -> Result<Vec<String>, sqlx::Error> {
    db.traced("SELECT", "orders", async {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM orders WHERE (status = $1 OR status = $2) \
             AND ((retry_at IS NULL AND updated_at <= $3) OR retry_at <= $4) \
             ORDER BY updated_at, id LIMIT 200",
        )
        .bind(PENDING)
        .bind(COMPENSATING)
        .bind(stale)
        .bind(now)
        .fetch_all(db.pool())
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    })
    .await
}

/// The earliest scheduled retry of an order in progress (ms since epoch).
pub(crate) async fn next_retry(db: &Db) -> Result<Option<i64>, sqlx::Error> {
    db.traced("SELECT", "orders", async {
        let row: (Option<i64>,) = sqlx::query_as(
            "SELECT MIN(retry_at) FROM orders WHERE (status = $1 OR status = $2) AND retry_at IS NOT NULL",
        )
        .bind(PENDING)
        .bind(COMPENSATING)
        .fetch_one(db.pool())
        .await?;
        Ok(row.0)
    })
    .await
}

/// An order by id.
pub(crate) async fn load(db: &Db, id: &str) -> Result<Option<Order>, sqlx::Error> {
    db.traced("SELECT", "orders", async {
        let mut conn = db.pool().acquire().await?;
        load_in(&mut conn, id).await
    })
    .await
}

/// A customer's orders, newest first, `limit` at a time below `cursor`.
pub(crate) async fn by_customer(
    db: &Db,
    customer: &str,
    cursor: Option<&str>,
    limit: i64,
) -> Result<(Vec<Order>, Option<String>), sqlx::Error> {
    db.traced("SELECT", "orders", async {
        let mut conn = db.pool().acquire().await?;
        let ids: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM orders WHERE customer_id = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(customer)
        .bind(cursor.unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(&mut *conn)
        .await?;
        let more = ids.len() as i64 > limit;
        let mut orders = Vec::with_capacity(ids.len());
        for (id,) in ids.into_iter().take(limit as usize) {
            if let Some(order) = load_in(&mut conn, &id).await? {
                orders.push(order);
            }
        }
        let next = if more {
            orders.last().map(|o| o.id.clone())
        } else {
            None
        };
        Ok((orders, next))
    })
    .await
}

/// The saga log of an order, oldest first.
pub(crate) async fn saga_log(db: &Db, id: &str) -> Result<Vec<SagaLogEntry>, sqlx::Error> {
    db.traced("SELECT", "saga_log", async {
        sqlx::query_as::<_, SagaLogEntry>(
            "SELECT step, outcome, detail, created_at AS created_at_ms FROM saga_log WHERE order_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(db.pool())
        .await
    })
    .await
}

async fn load_in(conn: &mut AnyConnection, id: &str) -> Result<Option<Order>, sqlx::Error> {
    let row = sqlx::query_as::<_, OrderRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM orders WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let items = sqlx::query_as::<_, OrderLine>(
        "SELECT product_id, quantity FROM order_items WHERE order_id = $1 ORDER BY line",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(Order {
        id: row.id,
        customer_id: row.customer_id,
        status: row.status,
        failure_reason: row.failure_reason,
        items,
        total_minor: row.total_minor,
        currency: row.currency,
        reservation_id: row.reservation_id,
        payment_id: row.payment_id,
        refund: row.refund,
        saga_step: row.saga_step,
        attempts: row.attempts,
        next_attempt_at_ms: row.retry_at,
        created_at_ms: row.created_at,
        updated_at_ms: row.updated_at,
    }))
}

async fn append_log(
    tx: &mut Transaction<'static, Any>,
    order_id: &str,
    step: &str,
    outcome: &str,
    detail: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO saga_log (order_id, step, outcome, detail, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(order_id)
        .bind(step)
        .bind(outcome)
        .bind(detail.map(str::to_owned))
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Writes a domain event to the outbox, in the caller's transaction.
async fn append_event(
    tx: &mut Transaction<'static, Any>,
    order: &Order,
    event_type: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let event_id = uuid::Uuid::now_v7().to_string();
    let payload = json!({
        "schema_version": EVENT_SCHEMA_VERSION,
        "event_id": event_id,
        "type": event_type,
        "order_id": order.id,
        "occurred_at_ms": now,
        "order": order,
    });
    // The change's trace context, so the event's publication joins its trace.
    let trace = TraceHeaders::current();
    sqlx::query(
        "INSERT INTO outbox (event_id, order_id, event_type, payload, created_at, traceparent, tracestate) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&event_id)
    .bind(&order.id)
    .bind(event_type)
    .bind(payload.to_string())
    .bind(now)
    .bind(trace.traceparent)
    .bind(trace.tracestate)
    .execute(&mut **tx)
        .await?;
    Ok(())
}
