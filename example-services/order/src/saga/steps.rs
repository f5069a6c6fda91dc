//! The saga's steps: one remote call each, turned into the transition to record.
//!
//! A step never writes to the database itself; it returns an [`Outcome`] and
//! the driver records it, so the recording is always one transaction with the
//! saga log and the outbox.

use axum::http::{HeaderMap, Method, StatusCode};
use serde::Serialize;
use serde_json::json;
use service_kit::OutboundResponse;

use super::{Outcome, Saga, SagaStep};
use crate::model::{
    COMPENSATING, CONFIRMED, FAILED, Order, REFUND_COMPLETED, REFUND_NOT_NEEDED, REFUND_PENDING,
};
use crate::peers::{Reply, call, problem_detail};
use crate::store::{ReservationInfo, Transition};

impl Saga {
    pub(super) async fn run_step(
        &self,
        step: SagaStep,
        order: &Order,
        incoming: &HeaderMap,
    ) -> Outcome {
        match step {
            SagaStep::Reserve => self.reserve(order, incoming).await,
            SagaStep::Charge => self.charge(order, incoming).await,
            SagaStep::Commit => self.commit(order, incoming).await,
            SagaStep::Refund => self.refund(order, incoming).await,
            SagaStep::Release => self.release(order, incoming).await,
            SagaStep::Done => Outcome::Stall("order already done".into()),
        }
    }

    async fn reserve(&self, order: &Order, incoming: &HeaderMap) -> Outcome {
        let answer = self
            .catalog
            .reserve(
                &self.outbound,
                &self.config,
                &order.id,
                &order.items,
                incoming,
            )
            .await;
        let reservation = match answer {
            Ok(Ok(reservation)) => reservation,
            Ok(Err(refusal)) => {
                let reason = if refusal.conflict {
                    format!("insufficient stock: {}", refusal.detail)
                } else {
                    format!("rejected by catalog: {}", refusal.detail)
                };
                return Outcome::Advance(fail(SagaStep::Reserve, "failed", reason));
            }
            Err(reason) => return Outcome::Stall(reason),
        };
        let mut t = match reservation.status.as_str() {
            "held" | "committed" => {
                let mut t = Transition::new(SagaStep::Reserve, "succeeded", SagaStep::Charge);
                t.detail = Some(format!("reservation {}", reservation.id));
                t
            }
            other => fail(
                SagaStep::Reserve,
                "failed",
                format!("reservation {other} before payment"),
            ),
        };
        t.reservation = Some(ReservationInfo {
            id: reservation.id,
            total_minor: reservation.total_minor,
            currency: reservation.currency,
        });
        Outcome::Advance(t)
    }

    async fn charge(&self, order: &Order, incoming: &HeaderMap) -> Outcome {
        let (Some(total), Some(currency)) = (order.total_minor, order.currency.as_deref()) else {
            return Outcome::Advance(to_release(
                SagaStep::Charge,
                "order has no total to charge".into(),
            ));
        };
        let body = json!({
            "order_id": order.id,
            "amount_minor": total,
            "currency": currency,
            "customer_id": order.customer_id,
        });
        // Derived from the order id: every retry, in this process or after a
        // restart, is the same charge to the payment service.
        let key = format!("order-{}", order.id);
        let url = self.config.payment("/v1/payments");
        let extra = [("idempotency-key", key.as_str())];
        let response = match self.post(&url, incoming, &extra, Some(&body)).await {
            Ok(response) => response,
            Err(stall) => return stall,
        };
        if response.status.is_success() {
            let Ok(payment) = response.json::<payment_reply::Payment>() else {
                return Outcome::Stall("payment answered with an unreadable payment".into());
            };
            let mut t = Transition::new(SagaStep::Charge, "succeeded", SagaStep::Commit);
            t.detail = Some(format!("payment {}", payment.id));
            t.payment_id = Some(payment.id);
            return Outcome::Advance(t);
        }
        let reason = match response.status {
            StatusCode::PAYMENT_REQUIRED => {
                format!("payment declined: {}", problem_detail(&response))
            }
            _ => format!("payment rejected: {}", problem_detail(&response)),
        };
        Outcome::Advance(to_release(SagaStep::Charge, reason))
    }

    async fn commit(&self, order: &Order, incoming: &HeaderMap) -> Outcome {
        let Some(reservation) = order.reservation_id.as_deref() else {
            return Outcome::Advance(to_refund("order has no reservation to commit".into()));
        };
        let answer = self
            .catalog
            .end(&self.outbound, &self.config, reservation, true, incoming)
            .await;
        match answer {
            Ok(Ok(())) => {
                let mut t = Transition::new(SagaStep::Commit, "succeeded", SagaStep::Done);
                t.status = Some(CONFIRMED);
                Outcome::Advance(t)
            }
            Ok(Err(refusal)) => Outcome::Advance(to_refund(format!(
                "stock could not be committed: {}",
                refusal.detail
            ))),
            Err(reason) => Outcome::Stall(reason),
        }
    }

    /// Gives the payment back. The step only moves on once the payment
    /// service confirms the refund, or says there is nothing to refund
    /// (`409 payment-not-refundable`: the payment was declined). Anything
    /// else, a refusal included, stalls the step, which is then retried with
    /// backoff until it succeeds: the order stays `compensating` with
    /// `refund: pending` meanwhile.
    async fn refund(&self, order: &Order, incoming: &HeaderMap) -> Outcome {
        let Some(payment) = order.payment_id.as_deref() else {
            let mut t = Transition::new(SagaStep::Refund, "skipped", SagaStep::Release);
            t.refund = Some(REFUND_NOT_NEEDED);
            return Outcome::Advance(t);
        };
        let url = self
            .config
            .payment(&format!("/v1/payments/{payment}/refund"));
        let response = match self.post(&url, incoming, &[], None::<&()>).await {
            Ok(response) => response,
            Err(stall) => return stall,
        };
        if response.status.is_success() {
            let mut t = Transition::new(SagaStep::Refund, "succeeded", SagaStep::Release);
            t.detail = Some(format!("payment {payment} refunded"));
            t.refund = Some(REFUND_COMPLETED);
            return Outcome::Advance(t);
        }
        if response.status == StatusCode::CONFLICT
            && problem_type(&response).as_deref()
                == Some("https://weir.dev/problems/payment-not-refundable")
        {
            let mut t = Transition::new(SagaStep::Refund, "not_needed", SagaStep::Release);
            t.detail = Some(problem_detail(&response));
            t.refund = Some(REFUND_NOT_NEEDED);
            return Outcome::Advance(t);
        }
        tracing::error!(order = %order.id, %payment, status = %response.status,
            "refund refused; it will be tried again");
        Outcome::Stall(format!(
            "payment refused the refund ({}): {}",
            response.status,
            problem_detail(&response)
        ))
    }

    async fn release(&self, order: &Order, incoming: &HeaderMap) -> Outcome {
        let reason = order
            .failure_reason
            .clone()
            .unwrap_or_else(|| "order failed".into());
        let Some(reservation) = order.reservation_id.as_deref() else {
            return Outcome::Advance(fail(SagaStep::Release, "skipped", reason));
        };
        let answer = self
            .catalog
            .end(&self.outbound, &self.config, reservation, false, incoming)
            .await;
        match answer {
            Ok(Ok(())) => Outcome::Advance(fail(SagaStep::Release, "succeeded", reason)),
            Ok(Err(refusal)) => {
                tracing::error!(order = %order.id, %reservation, detail = %refusal.detail, "release refused");
                let mut t = fail(SagaStep::Release, "failed", reason);
                t.detail = Some(refusal.detail);
                Outcome::Advance(t)
            }
            Err(reason) => Outcome::Stall(reason),
        }
    }

    /// POSTs to a peer with the saga's retries: the definite answer, or the
    /// [`Outcome::Stall`] to return when there is none yet.
    async fn post<B: Serialize>(
        &self,
        url: &str,
        incoming: &HeaderMap,
        extra: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<OutboundResponse, Outcome> {
        match call(
            &self.outbound,
            &self.config,
            Method::POST,
            url,
            incoming,
            extra,
            body,
        )
        .await
        {
            Reply::Definite(response) => Ok(response),
            Reply::Unknown(reason) => Err(Outcome::Stall(reason)),
        }
    }
}

/// Finish the order as failed.
pub(super) fn fail(step: SagaStep, outcome: &'static str, reason: String) -> Transition {
    let mut t = failing(step, outcome, SagaStep::Done, reason);
    t.status = Some(FAILED);
    t
}

/// Payment failed: give the stock back, then fail.
fn to_release(step: SagaStep, reason: String) -> Transition {
    failing(step, "failed", SagaStep::Release, reason)
}

/// Commit failed after payment: the order is `compensating` until the
/// payment is refunded and the stock given back, then it fails.
fn to_refund(reason: String) -> Transition {
    let mut t = failing(SagaStep::Commit, "failed", SagaStep::Refund, reason);
    t.status = Some(COMPENSATING);
    t.refund = Some(REFUND_PENDING);
    t
}

/// The `type` of a problem body.
fn problem_type(response: &OutboundResponse) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()?
        .get("type")?
        .as_str()
        .map(str::to_owned)
}

/// A step that records `reason` as both its detail and the order's failure.
fn failing(step: SagaStep, outcome: &'static str, next: SagaStep, reason: String) -> Transition {
    let mut t = Transition::new(step, outcome, next);
    t.detail = Some(reason.clone());
    t.failure_reason = Some(reason);
    t
}

/// The fields of the payment service's answers the saga reads (tolerant of anything else).
mod payment_reply {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    pub(super) struct Payment {
        pub(super) id: String,
    }
}
