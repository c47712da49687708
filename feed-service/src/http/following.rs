//! `PUT`/`DELETE /v1/users/{id}/following/{target}`: follow and unfollow.
//!
//! Following is a resource of the follower's, so the path names the follower, and it must be the
//! caller. `PUT` and `DELETE` rather than `POST /follow`: both are idempotent by their HTTP
//! definition, which is what a client retrying over a flaky network needs.

use axum::{extract::State, http::StatusCode};
use platform::{extract::Path, problem::Problem};

use super::{AppState, Caller, user_in_path};
use crate::error::FeedError;

/// Follow `target`. Following again changes nothing.
#[utoipa::path(
    put,
    path = "/v1/users/{id}/following/{target}",
    tag = "users",
    params(
        ("id" = String, Path, description = "The follower: the caller", pattern = "^[1-9][0-9]{0,15}$"),
        ("target" = String, Path, description = "The user to follow", pattern = "^[1-9][0-9]{0,15}$"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "`id` follows `target`"),
        (status = 403, description = "`id` is someone else", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user (`id` or `target`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`target` is the caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A backend the request needs is unavailable (the database, or Redis for a feed); the problem names it", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn follow(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, target)): Path<(String, String)>,
) -> Result<StatusCode, FeedError> {
    state
        .feed
        .follow(&caller, user_in_path(&id)?, user_in_path(&target)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stop following `target`. Unfollowing someone not followed changes nothing.
#[utoipa::path(
    delete,
    path = "/v1/users/{id}/following/{target}",
    tag = "users",
    params(
        ("id" = String, Path, description = "The follower: the caller", pattern = "^[1-9][0-9]{0,15}$"),
        ("target" = String, Path, description = "The user to stop following", pattern = "^[1-9][0-9]{0,15}$"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "`id` does not follow `target`"),
        (status = 403, description = "`id` is someone else", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user (`id` or `target`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`target` is the caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A backend the request needs is unavailable (the database, or Redis for a feed); the problem names it", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn unfollow(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, target)): Path<(String, String)>,
) -> Result<StatusCode, FeedError> {
    state
        .feed
        .unfollow(&caller, user_in_path(&id)?, user_in_path(&target)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
