//! `POST /v1/notifications`, `GET /v1/notifications/{id}`.

use axum::{Json, extract::State, http::StatusCode};
use platform::{
    extract::{Json as JsonBody, Path},
    problem::Problem,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AppState, Caller, uuid_in_path};
use crate::{
    domain::{Channel, NotificationRequest, Priority},
    store::NotificationRecord,
};

/// The body of `POST /v1/notifications`, as sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationBody {
    #[schema(example = "user:42", pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub user_id: String,
    #[schema(schema_with = super::schemas::template_names, example = "welcome")]
    pub template: String,
    /// The template's fields (`template` lists each template's).
    #[schema(value_type = Object, example = json!({"name": "Ada"}))]
    pub data: Map<String, Value>,
    /// The channels to use; by default every channel the user can be reached on.
    #[schema(value_type = Option<Vec<Channel>>)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub priority: Priority,
    /// A repeat with the same key returns the first notification and sends nothing new: 1 to 255
    /// printable ASCII characters.
    #[schema(pattern = r"^[\x20-\x7E]{1,255}$")]
    pub idempotency_key: Option<String>,
}

impl NotificationBody {
    fn into_request(self) -> NotificationRequest {
        NotificationRequest {
            user_id: self.user_id,
            template: self.template,
            data: self.data,
            channels: self.channels,
            priority: self.priority,
            idempotency_key: self.idempotency_key,
        }
    }
}

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
    security(("api_key" = [])),
    responses(
        (status = 202, description = "Accepted", body = AcceptedResponse),
        (status = 422, description = "Unknown template or user, a missing data field, a bad channel; the field is named", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database did not answer; nothing was stored, retry later (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_notification(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(body): JsonBody<NotificationBody>,
) -> Result<(StatusCode, Json<AcceptedResponse>), Problem> {
    let accepted = state.notifier.accept(body.into_request()).await?;
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
    params(("id" = Uuid, Path, description = "The id `POST /v1/notifications` returned")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The notification", body = NotificationRecord),
        (status = 400, description = "The id is not a UUID; `errors` names the parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such notification", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database did not answer; nothing was stored, retry later (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_notification(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<NotificationRecord>, Problem> {
    let id = uuid_in_path(&id)?;
    Ok(Json(state.notifier.notification(id).await?))
}
