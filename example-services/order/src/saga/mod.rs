//! Placing an order as an orchestrated saga.
//!
//! ```text
//! reserve ──ok──▶ charge ──ok──▶ commit ──ok──▶ done (confirmed)
//!    │               │              │
//!    │ short         │ declined     │ reservation expired
//!    ▼               ▼              ▼  (order `compensating`, `refund: pending`)
//!  done (failed)   release ◀──── refund ⟲ retried with backoff until done
//!                    │
//!                    ▼
//!                  done (failed)
//! ```
//!
//! The step to run next is stored with the order (`saga_step`) and every
//! step's outcome is appended to the saga log in the same transaction. A
//! crash anywhere therefore leaves the order at a step whose call is safe to
//! make again: the catalog keys reservations by order id, the payment service
//! keys charges by `order-<id>`, and commit, release and refund are idempotent.
//! Recovery ([`Saga::recover`]) simply drives every pending order again, at
//! start-up and periodically. A step whose peer gives no definite answer
//! after the retries leaves the order pending for the next recovery pass;
//! stock held meanwhile is returned by the catalog's reservation expiry.
//!
//! Money is different: a refund owed during compensation is never given up.
//! A refund try that fails (no answer, a sidecar's own error, or a refusal)
//! schedules the next try (`retry_at`, backoff from `refund_backoff` doubling
//! up to `refund_backoff_max`) in the same row, so the recovery loop, in this
//! process or after a restart, tries again until the payment service
//! confirms it. The only end without a refund is the payment service saying
//! there is nothing to refund (`409 payment-not-refundable`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use serde::{Deserialize, Serialize};
use service_kit::telemetry::TraceContext;
use service_kit::{Db, Outbound, now_millis};
use utoipa::ToSchema;

use crate::catalog_api::CatalogClient;
use crate::config::Config;
use crate::model::{Order, in_progress};
use crate::peers::backoff_capped;
use crate::store::{self, Transition};

mod steps;

use steps::fail;

/// The saga's steps, stored as `saga_step` and named in the saga log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SagaStep {
    /// Reserve the stock in the catalog.
    Reserve,
    /// Charge the payment.
    Charge,
    /// Commit the reservation and confirm the order.
    Commit,
    /// Compensation: refund a payment whose order cannot be completed.
    Refund,
    /// Compensation: release the reservation and fail the order.
    Release,
    /// Finished.
    Done,
}

impl SagaStep {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStep::Reserve => "reserve",
            SagaStep::Charge => "charge",
            SagaStep::Commit => "commit",
            SagaStep::Refund => "refund",
            SagaStep::Release => "release",
            SagaStep::Done => "done",
        }
    }

    /// The name of the step's span.
    fn span_name(self) -> &'static str {
        match self {
            SagaStep::Reserve => "saga reserve",
            SagaStep::Charge => "saga charge",
            SagaStep::Commit => "saga commit",
            SagaStep::Refund => "saga refund",
            SagaStep::Release => "saga release",
            SagaStep::Done => "saga done",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [
            SagaStep::Reserve,
            SagaStep::Charge,
            SagaStep::Commit,
            SagaStep::Refund,
            SagaStep::Release,
            SagaStep::Done,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// What running one step produced.
pub(super) enum Outcome {
    /// Record this and continue.
    Advance(Transition),
    /// No definite answer; leave the order pending for recovery.
    Stall(String),
}

/// Drives orders through the saga.
#[derive(Debug)]
pub(crate) struct Saga {
    db: Db,
    outbound: Outbound,
    /// The catalog over the configured API.
    catalog: CatalogClient,
    config: Arc<Config>,
    /// Orders being driven in this process, so a client retry and the recovery
    /// pass never run one order's steps side by side.
    in_flight: Mutex<HashSet<String>>,
    /// Wakes the outbox relays when events were written.
    pub(crate) events: Arc<crate::outbox::Wakers>,
    /// Wakes the recovery loop when a retry was scheduled.
    scheduled: tokio::sync::Notify,
    /// When this process's saga began (ms since epoch): orders touched
    /// before it belong to a driver that is gone.
    started_ms: i64,
}

/// Removes an order from the in-flight set when its driver ends, even by panic or cancellation.
struct InFlight<'a> {
    saga: &'a Saga,
    order_id: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.saga.in_flight.lock() {
            set.remove(&self.order_id);
        }
    }
}

impl Saga {
    pub(crate) fn new(db: Db, config: Arc<Config>, events: Arc<crate::outbox::Wakers>) -> Self {
        let outbound = Outbound::new(config.outbound_proxy, config.call_timeout)
            .with_telemetry(config.telemetry.clone());
        Self {
            db,
            outbound,
            catalog: CatalogClient::new(&config),
            config,
            in_flight: Mutex::new(HashSet::new()),
            events,
            scheduled: tokio::sync::Notify::new(),
            started_ms: now_millis(),
        }
    }

    /// Runs the order's remaining steps until it is done, stalls, or (test
    /// hook) the configured crash point is reached. `incoming` carries the
    /// trace context of the request that caused this.
    pub(crate) async fn drive(
        &self,
        order_id: &str,
        incoming: &HeaderMap,
    ) -> Result<(), sqlx::Error> {
        let Some(_guard) = self.claim(order_id) else {
            return Ok(());
        };
        loop {
            let Some(order) = store::load(&self.db, order_id).await? else {
                return Ok(());
            };
            let Some(step) = SagaStep::parse(&order.saga_step) else {
                tracing::error!(order = %order.id, step = %order.saga_step, "unknown saga step");
                return Ok(());
            };
            if !in_progress(&order.status) || step == SagaStep::Done {
                return Ok(());
            }
            match self.traced_step(step, &order, incoming).await {
                Outcome::Advance(transition) => {
                    if !store::apply(&self.db, order_id, &transition).await? {
                        // Someone else recorded this step first; start over from what they wrote.
                        continue;
                    }
                    tracing::info!(order = %order_id, step = step.as_str(), outcome = transition.outcome,
                        next = transition.next.as_str(), "saga step recorded");
                    if transition.status.is_some() {
                        self.events.notify_one();
                    }
                    if self.config.crash_after_step == Some(step) {
                        tracing::warn!(order = %order_id, step = step.as_str(), "crash injected after step");
                        return Ok(());
                    }
                }
                Outcome::Stall(reason) => {
                    let age = now_millis().saturating_sub(order.created_at_ms);
                    let deadline =
                        i64::try_from(self.config.reserve_deadline.as_millis()).unwrap_or(i64::MAX);
                    if step == SagaStep::Reserve && age >= deadline {
                        let t = fail(
                            SagaStep::Reserve,
                            "failed",
                            format!("catalog unavailable: {reason}"),
                        );
                        if store::apply(&self.db, order_id, &t).await? {
                            self.events.notify_one();
                        }
                        continue;
                    }
                    // Compensation is retried on its own schedule; other
                    // steps wait for the next recovery pass.
                    let retry_at = (step == SagaStep::Refund).then(|| {
                        let attempt = u32::try_from(order.attempts + 1).unwrap_or(u32::MAX);
                        let wait = backoff_capped(
                            self.config.refund_backoff,
                            self.config.refund_backoff_max,
                            attempt,
                        );
                        now_millis()
                            .saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
                    });
                    tracing::warn!(order = %order_id, step = step.as_str(), %reason, ?retry_at,
                        attempts = order.attempts + 1, "saga step stalled, will be tried again");
                    store::log_stall(&self.db, order_id, step, &reason, retry_at).await?;
                    if retry_at.is_some() {
                        self.scheduled.notify_one();
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Drives every order in progress that is due: not touched since
    /// `stale`, or whose scheduled retry is due at `now` (ms since epoch).
    pub(crate) async fn recover(&self, stale: i64, now: i64) -> Result<usize, sqlx::Error> {
        let pending = store::due(&self.db, stale, now).await?;
        let count = pending.len();
        for order_id in pending {
            tracing::info!(order = %order_id, "recovering pending order");
            self.recover_one(&order_id).await?;
        }
        Ok(count)
    }

    /// Runs one step as an INTERNAL span `saga {step}` (its calls and
    /// queries are its children) when it belongs to a traced request.
    async fn traced_step(&self, step: SagaStep, order: &Order, incoming: &HeaderMap) -> Outcome {
        let telemetry = &self.config.telemetry;
        if !telemetry.telemetry().is_enabled() || !TraceContext::current().has_active_span() {
            return self.run_step(step, order, incoming).await;
        }
        let mut span = telemetry.span(
            step.span_name(),
            vec![KeyValue::new("weir.order.id", order.id.clone())],
        );
        let outcome = telemetry
            .in_span(&span, self.run_step(step, order, incoming))
            .await;
        match &outcome {
            Outcome::Advance(t) => span.set(KeyValue::new("weir.saga.outcome", t.outcome)),
            Outcome::Stall(reason) => {
                span.set(KeyValue::new("weir.saga.outcome", "stalled"));
                span.set(KeyValue::new("weir.saga.stall_reason", reason.clone()));
                span.record_error("stalled");
            }
        }
        outcome
    }

    /// Drives an order nobody is driving; with tracing on, as the root of a
    /// trace of its own (`saga recover`), since no request caused it.
    async fn recover_one(&self, order_id: &str) -> Result<(), sqlx::Error> {
        let telemetry = &self.config.telemetry;
        if !telemetry.telemetry().is_enabled() {
            return self.drive(order_id, &HeaderMap::new()).await;
        }
        let span = telemetry.telemetry().child_span(
            &TraceContext::new(),
            "saga recover",
            SpanKind::Internal,
            vec![KeyValue::new("weir.order.id", order_id.to_owned())],
        );
        telemetry
            .in_span(&span, self.drive(order_id, &HeaderMap::new()))
            .await
    }

    fn claim(&self, order_id: &str) -> Option<InFlight<'_>> {
        let mut set = self.in_flight.lock().ok()?;
        if !set.insert(order_id.to_owned()) {
            return None;
        }
        Some(InFlight {
            saga: self,
            order_id: order_id.to_owned(),
        })
    }
}

/// The shortest pause between two recovery passes, so an order that is due
/// but claimed by another driver is not polled in a tight loop.
const MIN_PAUSE: Duration = Duration::from_millis(20);

/// Drives orders in progress at start-up, then whenever a scheduled retry is
/// due and at least every `interval`, picking up orders whose driver died or
/// stalled.
pub(crate) async fn recovery_loop(saga: Arc<Saga>, interval: Duration) {
    // At start-up every order in progress that was last touched before this
    // process began belongs to a driver that is gone, and a scheduled retry
    // need not wait: it is tried at once. Orders placed since are driven by
    // their own requests: taking them here would leave those requests to
    // answer `pending` while this pass runs their steps.
    if let Err(error) = saga.recover(saga.started_ms - 1, i64::MAX).await {
        tracing::warn!(%error, "start-up recovery failed");
    }
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    let mut next_pass = now_millis().saturating_add(interval_ms);
    loop {
        let next_retry = match store::next_retry(&saga.db).await {
            Ok(at) => at,
            Err(error) => {
                tracing::warn!(%error, "cannot read the next scheduled retry");
                None
            }
        };
        let wake = next_retry.map_or(next_pass, |at| at.min(next_pass));
        let wait = Duration::from_millis(u64::try_from(wake - now_millis()).unwrap_or(0));
        tokio::select! {
            () = tokio::time::sleep(wait.max(MIN_PAUSE)) => {}
            // A retry was scheduled, possibly earlier than `wake`: look again.
            () = saga.scheduled.notified() => continue,
        }
        let now = now_millis();
        if now >= next_pass {
            next_pass = now.saturating_add(interval_ms);
        }
        if let Err(error) = saga.recover(now.saturating_sub(interval_ms), now).await {
            tracing::warn!(%error, "recovery pass failed");
        }
    }
}
