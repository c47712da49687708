//! `POST /api/v1/keys`: self-service API keys.
//!
//! Anyone may create a key, as with a free Bitly account: a key is what makes a link manageable
//! (stats, deletion) and what a rate limit would be applied to, not a gate on who may shorten. A
//! deployment that wants a gate would put this route behind its sign-up flow.

use axum::{extract::State, http::StatusCode};
use platform::{extract::Json, problem::Problem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::AppState;
use crate::error::ShortenerError;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A label for the key, 1 to 100 characters, not all spaces (they are trimmed).
    #[schema(
        example = "my laptop",
        min_length = 1,
        max_length = 100,
        pattern = r"\S"
    )]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key. It is shown here once and stored only as a hash: keep it.
    #[schema(example = "sk_3f1c2a9b8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b")]
    pub key: String,
    pub id: i64,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// Create an API key.
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "keys",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "The new key, shown once", body = CreatedKey),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable and nothing was changed; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_key(
    State(state): State<AppState>,
    Json(request): Json<CreateKeyRequest>,
) -> Result<(StatusCode, axum::Json<CreatedKey>), ShortenerError> {
    let (key, record) = state.shortener.issue_api_key(&request.name).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedKey {
            key: key.expose().to_owned(),
            id: record.id.0,
            name: record.name,
            created_at: record.created_at,
        }),
    ))
}
