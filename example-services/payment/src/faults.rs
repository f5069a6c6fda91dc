//! The simulated processor's fault knobs, changeable at run time.
//!
//! They exist so retries, timeouts and circuit breaking can be shown and
//! tested against a real service: `failure_rate` answers `503` before anything
//! is charged (safe to retry), `latency_ms` delays every answer *after* the
//! charge is recorded (so a caller that times out and retries meets its own
//! earlier charge), and `decline_over_minor` declines large amounts with `402`
//! (final, not worth retrying). `GET /admin/faults` also reports how many
//! charge requests arrived, which is how tests count retries.

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
    /// Ignored (read-only counter).
    #[serde(default)]
    pub charge_requests: Option<u64>,
}

/// What `GET /admin/faults` answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FaultReport {
    /// Current knobs.
    #[serde(flatten)]
    pub settings: FaultSettings,
    /// Charge requests received since start.
    pub charge_requests: u64,
}

/// Live fault settings and the charge-request counter.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    settings: Mutex<FaultSettings>,
    charge_requests: AtomicU64,
}

impl Faults {
    pub(crate) fn new(settings: FaultSettings) -> Self {
        Self {
            settings: Mutex::new(settings),
            charge_requests: AtomicU64::new(0),
        }
    }

    /// Counts a charge request and returns the settings it must obey.
    pub(crate) fn on_charge_request(&self) -> FaultSettings {
        self.charge_requests.fetch_add(1, Ordering::Relaxed);
        self.current()
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
        }
    }
}

/// Current fault settings and the charge-request counter.
#[utoipa::path(get, path = "/admin/faults", tag = "admin",
    responses((status = 200, body = FaultReport)))]
pub(crate) async fn get_faults(State(state): State<AppState>) -> Json<FaultReport> {
    Json(state.faults.report())
}

/// Replace the fault settings.
#[utoipa::path(put, path = "/admin/faults", tag = "admin",
    request_body = FaultUpdate,
    responses(
        (status = 200, body = FaultReport),
        (status = 422, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn put_faults(
    State(state): State<AppState>,
    ApiJson(update): ApiJson<FaultUpdate>,
) -> Result<Json<FaultReport>, Problem> {
    if !(0.0..=1.0).contains(&update.failure_rate) {
        return Err(Problem::invalid(
            "failure_rate",
            "must be between 0.0 and 1.0",
        ));
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
    };
    tracing::info!(?settings, "fault settings changed");
    state.faults.set(settings);
    Ok(Json(state.faults.report()))
}
