//! The order service's API types and their validation.

use serde::{Deserialize, Serialize};
use service_kit::Problem;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Order states. `pending` while the saga runs (or waits for recovery),
/// `compensating` while a payment taken for an order that cannot complete is
/// given back, then `confirmed` or `failed` for good.
pub const PENDING: &str = "pending";
/// The order cannot complete and its payment is being refunded (retried until
/// the payment service confirms it); ends `failed` with `refund: completed`.
pub const COMPENSATING: &str = "compensating";
/// Paid and the stock committed.
pub const CONFIRMED: &str = "confirmed";
/// Not placed; `failure_reason` says why, and any stock or payment was given back.
pub const FAILED: &str = "failed";

/// Whether the saga still has steps to run for an order in `status`.
pub(crate) fn in_progress(status: &str) -> bool {
    status == PENDING || status == COMPENSATING
}

/// `Order::refund`: a refund is owed and not yet confirmed by the payment service.
pub const REFUND_PENDING: &str = "pending";
/// `Order::refund`: the payment service confirmed the refund.
pub const REFUND_COMPLETED: &str = "completed";
/// `Order::refund`: the payment service says nothing was taken (the payment
/// is not refundable because it was declined), so nothing is owed.
pub const REFUND_NOT_NEEDED: &str = "not_needed";

/// Body of `POST /v1/orders`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// The customer placing the order, 1-128 characters.
    pub customer_id: String,
    /// 1-50 lines, each product at most once.
    pub items: Vec<OrderLine>,
}

/// One line of an order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    /// Catalog product id.
    pub product_id: String,
    /// Units, 1-10000.
    pub quantity: i64,
}

impl PlaceOrder {
    /// Checks every field, naming the first bad one.
    pub(crate) fn validate(&self) -> Result<(), Problem> {
        if self.customer_id.trim().is_empty() || self.customer_id.len() > 128 {
            return Err(Problem::invalid("customer_id", "must be 1-128 characters"));
        }
        if self.items.is_empty() || self.items.len() > 50 {
            return Err(Problem::invalid("items", "must hold 1-50 lines"));
        }
        for (i, line) in self.items.iter().enumerate() {
            if line.product_id.trim().is_empty() || line.product_id.len() > 64 {
                return Err(Problem::invalid(
                    format!("items[{i}].product_id"),
                    "must be 1-64 characters",
                ));
            }
            if self.items[..i]
                .iter()
                .any(|l| l.product_id == line.product_id)
            {
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

    /// Fingerprint of the request, to catch an idempotency key reused for another order.
    pub(crate) fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.customer_id.as_bytes());
        for line in &self.items {
            hash.update([0]);
            hash.update(line.product_id.as_bytes());
            hash.update([0]);
            hash.update(line.quantity.to_string().as_bytes());
        }
        hex::encode(hash.finalize())
    }
}

/// An order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// Order id.
    pub id: String,
    /// The customer.
    pub customer_id: String,
    /// `pending`, `compensating`, `confirmed` or `failed`.
    pub status: String,
    /// Why the order failed.
    pub failure_reason: Option<String>,
    /// The ordered lines.
    pub items: Vec<OrderLine>,
    /// Total charged, minor units (known once stock is reserved).
    pub total_minor: Option<i64>,
    /// Currency of the total.
    pub currency: Option<String>,
    /// The catalog reservation.
    pub reservation_id: Option<String>,
    /// The payment.
    pub payment_id: Option<String>,
    /// The refund of the payment when the order could not complete after
    /// paying: `pending` (retried until done), `completed` or `not_needed`;
    /// `null` when no refund was due.
    pub refund: Option<String>,
    /// The saga step to run next (`done` when finished).
    pub saga_step: String,
    /// Failed tries of the current step so far (each try is one bounded
    /// call, itself retried a few times).
    pub attempts: i64,
    /// When the current step is tried again, milliseconds since the Unix
    /// epoch; `null` unless a compensation step is waiting to be retried.
    pub next_attempt_at_ms: Option<i64>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Last change, milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
}

/// A list of orders, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderList {
    /// The orders.
    pub items: Vec<Order>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One entry of an order's saga log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct SagaLogEntry {
    /// Step name.
    pub step: String,
    /// What happened: `succeeded`, `failed`, `retry_later`, …
    pub outcome: String,
    /// Details.
    pub detail: Option<String>,
    /// When, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// A list of saga log entries, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SagaLog {
    /// The entries.
    pub items: Vec<SagaLogEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> PlaceOrder {
        PlaceOrder {
            customer_id: "c".into(),
            items: vec![OrderLine {
                product_id: "p".into(),
                quantity: 1,
            }],
        }
    }

    #[test]
    fn validation_names_the_field_and_fingerprints_differ() {
        assert!(order().validate().is_ok());
        let mut bad = order();
        bad.items[0].quantity = 0;
        assert_eq!(
            bad.validate().unwrap_err().field.as_deref(),
            Some("items[0].quantity")
        );
        let mut bad = order();
        bad.customer_id = " ".into();
        assert_eq!(
            bad.validate().unwrap_err().field.as_deref(),
            Some("customer_id")
        );
        assert_ne!(order().fingerprint(), bad.fingerprint());
    }
}
