//! Returns the stock of reservations nobody committed in time.
//!
//! An order that dies between reserving and committing (crash, lost network)
//! must not keep stock out of sale forever; the sweeper expires held
//! reservations past their `expires_at` and puts their units back.

use std::time::Duration;

use service_kit::{Db, now_millis};

use crate::holds::expire_in;
use crate::reservations::HELD;

/// Expires every held reservation whose expiry is at or before `now`; returns how many.
pub async fn sweep_expired(db: &Db, now: i64) -> Result<usize, sqlx::Error> {
    let due: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM reservations WHERE status = $1 AND expires_at <= $2 ORDER BY expires_at LIMIT 500")
            .bind(HELD)
            .bind(now)
            .fetch_all(db.pool())
            .await?;
    let mut expired = 0;
    for (id,) in due {
        let mut tx = db.begin().await?;
        // Re-checked inside the transaction: a commit may have won the race.
        if expire_in(&mut tx, &id, now).await? {
            expired += 1;
            tracing::info!(reservation = %id, "reservation expired, stock returned");
        }
        tx.commit().await?;
    }
    Ok(expired)
}

/// Sweeps every `interval` until the task is aborted.
pub(crate) async fn run(db: Db, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(error) = sweep_expired(&db, now_millis()).await {
            tracing::warn!(%error, "reservation sweep failed");
        }
    }
}
