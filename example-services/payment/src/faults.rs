//! The simulated processor's fault knobs, changeable at run time.
//!
//! They exist so retries, timeouts and circuit breaking can be shown and
//! tested against a real service: `failure_rate` answers `503` before anything
//! is charged (safe to retry), `latency_ms` delays every answer *after* the
//! charge is recorded (so a caller that times out and retries meets its own
//! earlier charge), and `decline_over_minor` declines large amounts with `402`
//! (final, not worth retrying), and `refund_failure_rate` answers `503` to
//! refunds before anything is refunded (how a saga's compensation is shown to
//! survive a failing world). `GET /admin/faults` also reports how many charge
//! and refund requests arrived, which is how tests count retries.
//!
//! The knobs are off unless the service is started with them on
//! ([`Config::faults_enabled`](crate::Config::faults_enabled), the demo does,
//! or `PAYMENT_FAULTS=enabled`): a production payment service must not carry
//! an unauthenticated switch that makes it fail. Off, `/admin/faults`
//! answers `404` and no fault ever applies.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use service_kit::extract::ApiJson;
use service_kit::{Problem, ProblemDetails};
use utoipa::ToSchema;

use crate::state::AppState;

/// The fault knobs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FaultSettings {
    /// Share of charge requests answered `503` without charging, 0.0-1.0.
    pub failure_rate: f64,
    /// Delay added to every charge answer, milliseconds (at most 60000).
    pub latency_ms: u64,
    /// Amounts above this (minor units) are declined with `402`; `null` declines nothing.
    pub decline_over_minor: Option<i64>,
    /// Share of refund requests answered `503` without refunding, 0.0-1.0.
    #[serde(default)]
    pub refund_failure_rate: f64,
}

/// Body of `PUT /admin/faults`: the complete new settings (absent fields reset
/// to their defaults). `charge_requests` may be sent back as read and is ignored.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultUpdate {
    /// Share of charge requests answered `503`, 0.0-1.0.
    #[serde(default)]
    pub failure_rate: f64,
    /// Added delay, milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Decline amounts above this.
    #[serde(default)]
    pub decline_over_minor: Option<i64>,
    /// Share of refund requests answered `503`, 0.0-1.0.
    #[serde(default)]
    pub refund_failure_rate: f64,
    /// Ignored (read-only counter).
    #[serde(default)]
    pub charge_requests: Option<u64>,
    /// Ignored (read-only counter).
    #[serde(default)]
    pub refund_requests: Option<u64>,
}

/// What `GET /admin/faults` answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FaultReport {
    /// Current knobs.
    #[serde(flatten)]
    pub settings: FaultSettings,
    /// Charge requests received since start.
    pub charge_requests: u64,
    /// Refund requests received since start.
    pub refund_requests: u64,
}

/// Live fault settings and the request counters.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Off: the settings stay at their defaults (no fault) and the admin
    /// endpoints answer `404`.
    enabled: bool,
    settings: Mutex<FaultSettings>,
    charge_requests: AtomicU64,
    refund_requests: AtomicU64,
}

impl Faults {
    /// Knobs starting at `settings` when `enabled`; without faults otherwise.
    pub(crate) fn new(enabled: bool, settings: FaultSettings) -> Self {
        Self {
            enabled,
            settings: Mutex::new(if enabled {
                settings
            } else {
                FaultSettings::default()
            }),
            charge_requests: AtomicU64::new(0),
            refund_requests: AtomicU64::new(0),
        }
    }

    /// Counts a charge request and returns the settings it must obey.
    pub(crate) fn on_charge_request(&self) -> FaultSettings {
        self.charge_requests.fetch_add(1, Ordering::Relaxed);
        self.current()
    }

    /// Counts a refund request and returns the settings it must obey.
    pub(crate) fn on_refund_request(&self) -> FaultSettings {
        self.refund_requests.fetch_add(1, Ordering::Relaxed);
        self.current()
    }

    /// `404` when the knobs are off, so they look like they do not exist.
    fn available(&self) -> Result<(), Problem> {
        if self.enabled {
            Ok(())
        } else {
            Err(Problem::not_found(
                "fault injection is off (start payment with PAYMENT_FAULTS=enabled)",
            ))
        }
    }

    fn current(&self) -> FaultSettings {
        self.settings
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn set(&self, settings: FaultSettings) {
        match self.settings.lock() {
            Ok(mut guard) => *guard = settings,
            Err(poisoned) => *poisoned.into_inner() = settings,
        }
    }

    fn report(&self) -> FaultReport {
        FaultReport {
            settings: self.current(),
            charge_requests: self.charge_requests.load(Ordering::Relaxed),
            refund_requests: self.refund_requests.load(Ordering::Relaxed),
        }
    }
}

/// Current fault settings and the request counters.
#[utoipa::path(get, path = "/admin/faults", tag = "admin",
    responses(
        (status = 200, body = FaultReport),
        (status = 404, description = "Fault injection is off", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_faults(
    State(state): State<AppState>,
) -> Result<Json<FaultReport>, Problem> {
    state.faults.available()?;
    Ok(Json(state.faults.report()))
}

/// Replace the fault settings.
#[utoipa::path(put, path = "/admin/faults", tag = "admin",
    request_body = FaultUpdate,
    responses(
        (status = 200, body = FaultReport),
        (status = 404, description = "Fault injection is off", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn put_faults(
    State(state): State<AppState>,
    update: Result<ApiJson<FaultUpdate>, Problem>,
) -> Result<Json<FaultReport>, Problem> {
    state.faults.available()?;
    let ApiJson(update) = update?;
    for (field, rate) in [
        ("failure_rate", update.failure_rate),
        ("refund_failure_rate", update.refund_failure_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(Problem::invalid(field, "must be between 0.0 and 1.0"));
        }
    }
    if update.latency_ms > 60_000 {
        return Err(Problem::invalid("latency_ms", "must be at most 60000"));
    }
    if update.decline_over_minor.is_some_and(|v| v < 0) {
        return Err(Problem::invalid(
            "decline_over_minor",
            "must not be negative",
        ));
    }
    let settings = FaultSettings {
        failure_rate: update.failure_rate,
        latency_ms: update.latency_ms,
        decline_over_minor: update.decline_over_minor,
        refund_failure_rate: update.refund_failure_rate,
    };
    tracing::info!(?settings, "fault settings changed");
    state.faults.set(settings);
    Ok(Json(state.faults.report()))
}
