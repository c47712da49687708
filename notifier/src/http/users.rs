//! `PUT /v1/users/{id}`, `GET /v1/users/{id}`: contacts and preferences.

use std::collections::BTreeMap;

use axum::{Json, extract::State};
use platform::{
    extract::{Json as JsonBody, Path},
    problem::{FieldError, Problem},
};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{AppState, Caller};
use crate::domain::{Channel, User, UserDetails, UserId};

/// The body of `PUT /v1/users/{id}`: the whole user, replaced.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    /// An address with a `.` in its domain, at most 254 bytes.
    #[schema(
        example = "ada@example.com",
        max_length = 254,
        pattern = r"^[^@\s]+@\S*\.\S*$"
    )]
    pub email: Option<String>,
    /// E.164: `+` and 8 to 15 digits.
    #[schema(example = "+442071838750", pattern = r"^\+[0-9]{8,15}$")]
    pub phone: Option<String>,
    /// The push service's device tokens, one per device: 1 to 4,096 printable ASCII characters.
    #[serde(default)]
    #[schema(schema_with = super::schemas::push_tokens)]
    pub push_tokens: Vec<String>,
    /// Where webhooks are POSTed: `https://` (or `http://`), signed. At most 2,048 bytes, and a
    /// host written as an address must be a public one.
    #[schema(
        example = "https://example.com/hooks/notifications",
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://"
    )]
    pub webhook_url: Option<String>,
    /// Opt-in (`true`) or opt-out (`false`) per channel; a channel not named is opted in.
    #[serde(default)]
    #[schema(value_type = BTreeMap<Channel, bool>, example = json!({"sms": false}))]
    pub preferences: BTreeMap<String, bool>,
}

impl UserBody {
    // A method of the wire type rather than `From` for the domain's: the conversion belongs to
    // the layer that knows both, and the domain knows nothing of this one.
    fn into_details(self) -> UserDetails {
        UserDetails {
            email: self.email,
            phone: self.phone,
            push_tokens: self.push_tokens,
            webhook_url: self.webhook_url,
            preferences: self.preferences,
        }
    }
}

fn user_id(id: &str) -> Result<UserId, Problem> {
    UserId::parse(id).ok_or_else(|| {
        Problem::status(axum::http::StatusCode::BAD_REQUEST).with_error(FieldError::parameter(
            "id",
            "must be 1 to 64 of A-Z a-z 0-9 _ - . :",
        ))
    })
}

/// Create or replace a user's contacts and preferences.
#[utoipa::path(
    put,
    path = "/v1/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "1 to 64 of `A-Z a-z 0-9 _ - . :`",
        pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
    request_body = UserBody,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The user as stored"),
        (status = 400, description = "The id is not a user id; `errors` names the parameter", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A contact or preference that is not valid, named", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database did not answer; nothing was stored, retry later (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_user(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UserBody>,
) -> Result<Json<User>, Problem> {
    let id = user_id(&id)?;
    Ok(Json(
        state.notifier.put_user(id, body.into_details()).await?,
    ))
}

/// A user's contacts and preferences.
#[utoipa::path(
    get,
    path = "/v1/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The user's id",
        pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The user"),
        (status = 400, description = "The id is not a user id; `errors` names the parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database did not answer; nothing was stored, retry later (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, Problem> {
    let id = user_id(&id)?;
    Ok(Json(state.notifier.user(&id).await?))
}
