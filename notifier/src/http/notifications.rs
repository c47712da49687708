//! `POST /v1/notifications`, `GET /v1/notifications/{id}`.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use platform::{extract::Json as JsonBody, problem::Problem};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use crate::{domain::NotificationBody, error::NotifierError, store::NotificationRecord};

#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedResponse {
    pub id: Uuid,
    /// Always `accepted`: the notification is stored and will be delivered.
    #[schema(example = "accepted")]
    pub status: &'static str,
}

/// Send a notification.
///
/// Answers 202 once the notification is stored: delivery happens after, per channel, and
/// `GET /v1/notifications/{id}` shows it. A repeat with the same `idempotency_key` answers with
/// the first notification's id and sends nothing new.
#[utoipa::path(
    post,
    path = "/v1/notifications",
    tag = "notifications",
    request_body = NotificationBody,
    responses(
        (status = 202, description = "Accepted", body = AcceptedResponse),
        (status = 422, description = "Unknown template or user, a missing data field, a bad channel; the field is named", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_notification(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NotificationBody>,
) -> Result<(StatusCode, Json<AcceptedResponse>), Problem> {
    let accepted = state.notifier.accept(body).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(AcceptedResponse {
            id: accepted.id,
            status: "accepted",
        }),
    ))
}

/// A notification and each channel's delivery, with every attempt.
#[utoipa::path(
    get,
    path = "/v1/notifications/{id}",
    tag = "notifications",
    params(("id" = String, Path, description = "The id `POST /v1/notifications` returned")),
    responses(
        (status = 200, description = "The notification", body = NotificationRecord),
        (status = 404, description = "No such notification", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_notification(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<NotificationRecord>, Problem> {
    let id = Uuid::try_parse(&id).map_err(|_| NotifierError::NotificationNotFound)?;
    Ok(Json(state.notifier.notification(id).await?))
}
