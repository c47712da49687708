//! `POST /v1/users` (sign up), `GET /v1/users/{id}` (a public profile).

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::{
    extract::{Json, Path},
    problem::Problem,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{AppState, Caller, user_in_path};
use crate::{domain, error::FeedError};

// A type of its own rather than a `String`, so that the OpenAPI document describes a handle once
// (`#/components/schemas/Handle`) for every answer that holds one. The rule is
// `domain::Handle::parse`; the doc comment below is what clients read.
/// A user's public name: 1 to 30 of `a-z 0-9 _`, unique. Lower case only, rather than case kept
/// and compared without it: then the stored form, the unique index and what people type are the
/// same string, and `Ada` and `ada` cannot be two people.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = String, example = "ada", pattern = "^[a-z0-9_]{1,30}$")]
pub struct Handle(String);

impl From<domain::Handle> for Handle {
    fn from(handle: domain::Handle) -> Self {
        Self(handle.into_inner())
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    /// 1 to 30 of `a-z 0-9 _`, unique.
    #[schema(example = "ada", pattern = "^[a-z0-9_]{1,30}$")]
    pub handle: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignUpResponse {
    #[schema(example = "73014444264448")]
    pub id: String,
    pub handle: Handle,
    /// The token that acts as this user, for `Authorization: Bearer …`. Shown this once: only
    /// its hash is kept.
    #[schema(example = "sk_3f9c2a6e0b1d4c7a8e5f60718293a4b5c6d7e8f9")]
    pub token: String,
}

/// What `GET /v1/users/{id}` shows anyone with a token.
#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    #[schema(example = "73014444264448")]
    pub id: String,
    pub handle: Handle,
    /// How many users follow this one.
    pub followers: u64,
    /// How many users this one follows.
    pub following: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<domain::Profile> for Profile {
    fn from(profile: domain::Profile) -> Self {
        Self {
            id: profile.id.to_string(),
            handle: profile.handle.into(),
            followers: profile.followers,
            following: profile.following,
            created_at: profile.created_at,
        }
    }
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
        (status = 503, description = "A backend the request needs is unavailable (the database, or Redis for a feed); the problem names it", body = Problem, content_type = "application/problem+json"),
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
            id: signed_up.account.id.to_string(),
            handle: signed_up.account.handle.into(),
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
    params(("id" = String, Path, description = "The user's id", pattern = "^[1-9][0-9]{0,15}$")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A backend the request needs is unavailable (the database, or Redis for a feed); the problem names it", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    // Public to every user with a token: the token is checked, whose it is does not matter.
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Profile>, FeedError> {
    let profile = state.feed.profile(user_in_path(&id)?).await?;
    Ok(axum::Json(profile.into()))
}
