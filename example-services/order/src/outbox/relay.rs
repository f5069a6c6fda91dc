//! The relay loop one bus runs: read the bus's backlog in outbox order,
//! hand it to the broker, mark what the broker acknowledged, and back off
//! and reconnect when the broker fails.
//!
//! The loop never touches the order path: placing an order only writes the
//! outbox row and wakes the relays, so a broker outage grows a backlog and
//! nothing else. The backlog is the outbox rows whose mark for this bus is
//! still empty; it drains in order once the broker answers again.

use std::sync::Arc;
use std::time::Duration;

use service_kit::messaging::TraceHeaders;
use service_kit::{Db, now_millis};
use tokio::sync::Notify;

/// How many events one round reads and hands to the broker.
const BATCH: i64 = 100;

/// The first wait after a failure; doubled per failure in a row, with jitter.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two tries.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// An unpublished event as the relay reads it.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) seq: i64,
    pub(crate) event_id: String,
    pub(crate) order_id: String,
    pub(crate) event_type: String,
    /// The JSON body, sent as it is stored.
    pub(crate) payload: String,
    /// The trace context of the change that wrote the event.
    pub(crate) trace: TraceHeaders,
}

/// Why publishing failed; the relay logs it and reconnects after a pause.
pub(crate) type BusError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A broker the relay publishes to.
pub(crate) trait Bus: Send {
    /// `rabbitmq` or `kafka`: logs and `messaging.system`.
    const NAME: &'static str;
    /// The outbox column that marks delivery on this bus.
    const COLUMN: &'static str;

    /// Opens (or re-opens) the connection to the broker.
    async fn connect(&mut self) -> Result<(), BusError>;

    /// Publishes `batch` in order and reports, per event and in the same
    /// order, whether the broker acknowledged it. An event whose result is
    /// `Ok` is durable on the broker.
    async fn publish(&mut self, batch: &[Pending]) -> Vec<Result<(), BusError>>;
}

/// Publishes the outbox to `bus` until aborted, reconnecting after failures
/// with exponential backoff (200 ms doubling to 10 s, with jitter).
pub(crate) async fn relay<B: Bus>(db: Db, mut bus: B, wake: Arc<Notify>, poll: Duration) {
    let mut failures: u32 = 0;
    loop {
        let error = match bus.connect().await {
            Ok(()) => {
                tracing::info!(bus = B::NAME, "outbox relay connected");
                session(&db, &mut bus, &wake, poll, &mut failures).await
            }
            Err(error) => error,
        };
        failures = failures.saturating_add(1);
        let wait = backoff(failures);
        tracing::warn!(bus = B::NAME, error = %service_kit::server::error_chain(&*error), retry_in = ?wait,
            "outbox relay interrupted, reconnecting");
        tokio::time::sleep(wait).await;
    }
}

/// Publishes batches until one fails; returns the failure.
async fn session<B: Bus>(
    db: &Db,
    bus: &mut B,
    wake: &Notify,
    poll: Duration,
    failures: &mut u32,
) -> BusError {
    loop {
        let batch = match pending(db, B::COLUMN).await {
            Ok(batch) => batch,
            Err(error) => return Box::new(error),
        };
        if batch.is_empty() {
            // Woken by new events, or polled in case another process wrote some.
            let _ = tokio::time::timeout(poll, wake.notified()).await;
            continue;
        }
        let results = bus.publish(&batch).await;
        let mut acked = Vec::with_capacity(batch.len());
        let mut first_error = None;
        for (event, result) in batch.iter().zip(results) {
            match result {
                Ok(()) => acked.push(event.seq),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Err(error) = mark_sent(db, B::COLUMN, &acked).await {
            return Box::new(error);
        }
        if !acked.is_empty() {
            tracing::debug!(bus = B::NAME, events = acked.len(), "events published");
        }
        if let Some(error) = first_error {
            return error;
        }
        *failures = 0;
    }
}

/// The next batch of events not yet delivered on the bus marked by `column`.
async fn pending(db: &Db, column: &'static str) -> Result<Vec<Pending>, sqlx::Error> {
    type Row = (
        i64,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, event_id, order_id, event_type, payload, traceparent, tracestate FROM outbox \
         WHERE {column} IS NULL ORDER BY id LIMIT $1"
    )))
    .bind(BATCH)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(seq, event_id, order_id, event_type, payload, traceparent, tracestate)| Pending {
                seq,
                event_id,
                order_id,
                event_type,
                payload,
                trace: TraceHeaders {
                    traceparent,
                    tracestate,
                },
            },
        )
        .collect())
}

/// Marks the acknowledged events delivered, in one transaction.
async fn mark_sent(db: &Db, column: &'static str, seqs: &[i64]) -> Result<(), sqlx::Error> {
    if seqs.is_empty() {
        return Ok(());
    }
    let now = now_millis();
    let mut tx = db.begin().await?;
    for seq in seqs {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET {column} = $1 WHERE id = $2"
        )))
        .bind(now)
        .bind(*seq)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// The wait after `failures` failures in a row: 200 ms doubling to 10 s,
/// each between half and all of that (jitter, so relays of many replicas
/// do not reconnect in step).
fn backoff(failures: u32) -> Duration {
    let exp = BACKOFF_FIRST.saturating_mul(1 << failures.saturating_sub(1).min(16));
    let cap = exp.min(BACKOFF_MAX);
    cap / 2 + cap.mul_f64(fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter() {
        for _ in 0..50 {
            let first = backoff(1);
            assert!(first >= Duration::from_millis(100) && first <= BACKOFF_FIRST);
            let third = backoff(3);
            assert!(third >= Duration::from_millis(400) && third <= Duration::from_millis(800));
            let late = backoff(40);
            assert!(late >= BACKOFF_MAX / 2 && late <= BACKOFF_MAX);
        }
    }
}
