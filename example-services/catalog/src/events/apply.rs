//! What an order event does to the catalog's read model, exactly once.
//!
//! The buses deliver at least once: the order service's relay sends an
//! event again after a crash, a consumer that dies before acknowledging sees
//! it again, and with both buses configured every event arrives twice. The
//! event's id goes into `processed_events` in the same transaction as its
//! effect, so however often an event arrives it counts once; a crash before
//! the commit leaves neither, and the redelivery then applies it.

use serde::Deserialize;
use service_kit::{Db, now_millis};

/// The newest event body version this consumer understands.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The event that counts units as sold.
const CONFIRMED: &str = "order.confirmed";

/// The parts of an order event the catalog reads (the body has more).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OrderEvent {
    /// Absent in events written before the field existed: version 1.
    #[serde(default = "first_version")]
    pub(crate) schema_version: u32,
    pub(crate) event_id: String,
    #[serde(rename = "type")]
    pub(crate) event_type: String,
    pub(crate) order_id: String,
    pub(crate) order: EventOrder,
}

fn first_version() -> u32 {
    1
}

/// The order as the event carries it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EventOrder {
    pub(crate) items: Vec<EventLine>,
}

/// One line of the order.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EventLine {
    pub(crate) product_id: String,
    pub(crate) quantity: i64,
}

impl OrderEvent {
    /// Reads a message body; the error says why it cannot be used.
    pub(crate) fn parse(payload: &[u8]) -> Result<Self, String> {
        let event: Self =
            serde_json::from_slice(payload).map_err(|e| format!("not an order event: {e}"))?;
        if event.schema_version > SCHEMA_VERSION {
            return Err(format!(
                "schema_version {} is newer than {SCHEMA_VERSION}",
                event.schema_version
            ));
        }
        if event.event_id.is_empty() {
            return Err("empty event_id".to_owned());
        }
        if let Some(line) = event.order.items.iter().find(|l| l.quantity < 0) {
            return Err(format!("negative quantity for {}", line.product_id));
        }
        Ok(event)
    }
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// First time seen: its effect (if its type has one) is recorded.
    New,
    /// Seen before: nothing changed.
    Duplicate,
}

impl Applied {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Applied::New => "applied",
            Applied::Duplicate => "duplicate",
        }
    }
}

/// Records `event` (from `bus`) and its effect in one transaction, unless
/// its id was processed before.
pub(crate) async fn apply(
    db: &Db,
    bus: &'static str,
    event: &OrderEvent,
) -> Result<Applied, sqlx::Error> {
    db.traced("INSERT", "processed_events", async {
        let now = now_millis();
        let mut tx = db.begin().await?;
        let first = sqlx::query(
            "INSERT INTO processed_events (event_id, event_type, bus, processed_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&event.event_id)
        .bind(&event.event_type)
        .bind(bus)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if first.rows_affected() == 0 {
            return Ok(Applied::Duplicate);
        }
        if event.event_type == CONFIRMED {
            for line in &event.order.items {
                sqlx::query(
                    "INSERT INTO product_sales (product_id, units_sold, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (product_id) DO UPDATE SET units_sold = product_sales.units_sold + excluded.units_sold, \
                     updated_at = excluded.updated_at",
                )
                .bind(&line.product_id)
                .bind(line.quantity)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(Applied::New)
    })
    .await
}

/// Keeps a message that cannot be used, with why and where it was, so the
/// messages behind it go on.
pub(crate) async fn set_aside(
    db: &Db,
    bus: &'static str,
    position: &str,
    reason: &str,
    payload: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dead_letters (bus, position, reason, payload, received_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(bus)
    .bind(position)
    .bind(reason)
    .bind(String::from_utf8_lossy(payload).into_owned())
    .bind(now_millis())
    .execute(db.pool())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(version: Option<u32>) -> String {
        let version = version
            .map(|v| format!("\"schema_version\":{v},"))
            .unwrap_or_default();
        format!(
            r#"{{{version}"event_id":"e1","type":"order.confirmed","order_id":"o1","occurred_at_ms":1,
               "order":{{"id":"o1","status":"confirmed","items":[{{"product_id":"p","quantity":2}}]}}}}"#
        )
    }

    #[test]
    fn reads_the_event_and_refuses_what_it_cannot_use() {
        let event = OrderEvent::parse(body(Some(1)).as_bytes()).unwrap();
        assert_eq!(event.order.items[0].quantity, 2);
        assert_eq!(
            OrderEvent::parse(body(None).as_bytes())
                .unwrap()
                .schema_version,
            1
        );
        assert!(
            OrderEvent::parse(body(Some(2)).as_bytes())
                .unwrap_err()
                .contains("newer")
        );
        assert!(OrderEvent::parse(b"{not json").is_err());
        assert!(OrderEvent::parse(br#"{"event_id":"e"}"#).is_err());
    }
}
