//! `GET /v1/dlq`, `POST /v1/dlq/{id}/redrive`: the dead letters, and the way back.

use axum::{Json, extract::State, http::StatusCode};
use platform::{extract::Path, problem::Problem};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AppState, Caller, uuid_in_path};
use crate::store::DeadLetter;

/// How many dead letters the list shows, newest first.
const LIST_LIMIT: u32 = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetters {
    /// The newest 100, newest first.
    pub data: Vec<DeadLetter>,
}

/// The newest dead letters: deliveries that failed for good.
#[utoipa::path(
    get,
    path = "/v1/dlq",
    tag = "dead letters",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The newest 100 dead letters", body = DeadLetters),
        (status = 503, description = "The database did not answer; nothing was stored, retry later (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_dead_letters(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<DeadLetters>, Problem> {
    Ok(Json(DeadLetters {
        data: state.notifier.dead_letters(LIST_LIMIT).await?,
    }))
}

/// Put a dead letter back on its channel's topic, with a fresh retry budget.
///
/// Idempotent: the first call answers 202 and queues the delivery again; a repeat answers 200
/// with the same `redriven_at` and does nothing. A delivery redriven this way that fails for good
/// again becomes a new dead letter.
#[utoipa::path(
    post,
    path = "/v1/dlq/{id}/redrive",
    tag = "dead letters",
    params(("id" = uuid::Uuid, Path, description = "The dead letter's id")),
    security(("api_key" = [])),
    responses(
        (status = 202, description = "Redriven now", body = DeadLetter),
        (status = 200, description = "Redriven before; nothing done", body = DeadLetter),
        (status = 400, description = "The id is not a UUID; `errors` names the parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database did not answer; nothing was stored, retry later (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn redrive(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeadLetter>), Problem> {
    let id = uuid_in_path(&id)?;
    let redrive = state.notifier.redrive(id).await?;
    let status = if redrive.now {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(redrive.letter)))
}
