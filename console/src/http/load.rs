//! Running a system's k6 scenario from its page.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use platform::{
    extract::{Json, Path},
    problem::Problem,
};

use super::AppState;
use crate::load::{Ask, LoadError, Run};

/// `GET /api/load`: the run in progress, or the last one (`null` before the first).
pub async fn current(State(state): State<AppState>) -> axum::Json<Option<Run>> {
    axum::Json(state.load.run())
}

/// `POST /api/systems/{name}/load`: starts the system's scenario (202), unless one is running
/// (409) or k6 is missing (503, saying how to get it).
pub async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(ask): Json<Ask>,
) -> Result<Response, Problem> {
    let base = state.first_replica(&name)?;
    let run = state
        .load
        .start(&name, base.as_str(), state.settings.load_env.of(&name), ask)
        .map_err(|err| {
            let status = match err {
                LoadError::Busy(_) => StatusCode::CONFLICT,
                LoadError::NoScenario(_) => StatusCode::NOT_FOUND,
                LoadError::NoK6 => StatusCode::SERVICE_UNAVAILABLE,
                LoadError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            };
            Problem::status(status).with_detail(err.to_string())
        })?;
    Ok((StatusCode::ACCEPTED, axum::Json(run)).into_response())
}

/// `DELETE /api/load`: stops the run in progress (204), or 404 when none is.
pub async fn stop(State(state): State<AppState>) -> Result<StatusCode, Problem> {
    if state.load.stop() {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::status(StatusCode::NOT_FOUND).with_detail("No run is in progress."))
    }
}
