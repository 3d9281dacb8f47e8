//! Liveness and readiness for load balancers and orchestrators.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers too.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match state.db.ping().await {
        Ok(()) => Ok(Json(
            json!({ "status": "ok", "database": state.db.engine() }),
        )),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            Err(ApiError::Unavailable(format!(
                "The {} database does not answer.",
                state.db.engine()
            )))
        }
    }
}
