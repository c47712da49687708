//! `POST /v1/users` (sign up), `GET /v1/users/{id}` (a public profile).

use axum::{
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::{extract::Json, problem::Problem};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, Caller, user_in_path};
use crate::{
    domain::{Handle, Profile, UserId},
    error::FeedError,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    /// 1 to 30 of `a-z 0-9 _`, unique.
    #[schema(example = "ada")]
    pub handle: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignUpResponse {
    #[schema(value_type = String, example = "73014444264448")]
    pub id: UserId,
    pub handle: Handle,
    /// The token that acts as this user, for `Authorization: Bearer …`. Shown this once: only
    /// its hash is kept.
    #[schema(example = "sk_3f9c2a6e0b1d4c7a8e5f60718293a4b5c6d7e8f9")]
    pub token: String,
}

/// Sign up: a new user, and the token that acts as them.
#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "users",
    request_body = SignUpRequest,
    responses(
        (status = 201, description = "The user, with their token (shown once)", body = SignUpResponse,
            headers(("location" = String, description = "The user's profile"))),
        (status = 409, description = "The handle is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The handle is malformed; `errors` names it", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sign_up(
    State(state): State<AppState>,
    Json(request): Json<SignUpRequest>,
) -> Result<Response, FeedError> {
    let signed_up = state.feed.sign_up(&request.handle).await?;
    let location = format!("/v1/users/{}", signed_up.account.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(SignUpResponse {
            id: signed_up.account.id,
            handle: signed_up.account.handle,
            token: signed_up.token.expose().to_owned(),
        }),
    )
        .into_response())
}

/// A user's public profile, with follower and following counts.
#[utoipa::path(
    get,
    path = "/v1/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 401, description = "Missing or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    // Public to every user with a token: the token is checked, whose it is does not matter.
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Profile>, FeedError> {
    Ok(axum::Json(state.feed.profile(user_in_path(&id)?).await?))
}
