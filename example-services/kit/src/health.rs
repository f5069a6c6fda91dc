//! `/healthz` (the process answers) and `/readyz` (the database answers too).
//!
//! Kubernetes restarts a pod on failed liveness and stops routing to it on
//! failed readiness; a database outage should do the second, not the first.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::db::Db;
use crate::problem::Problem;

/// The health routes, for merging into a service's router.
pub fn routes(db: Db) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(db)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(db): State<Db>) -> Result<Json<Value>, Problem> {
    match db.ping().await {
        Ok(()) => Ok(Json(
            json!({ "status": "ready", "database": db.backend().name() }),
        )),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            Err(Problem::unavailable(
                "not-ready",
                "the database is not reachable",
            ))
        }
    }
}
