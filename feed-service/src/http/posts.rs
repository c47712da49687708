//! `POST /v1/posts`, `GET /v1/posts/{id}`, `DELETE /v1/posts/{id}`.

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

use super::{AppState, Caller, post_in_path, users::Handle};
use crate::{domain, error::FeedError};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePostRequest {
    /// 1 to 280 characters (Unicode scalar values), as sent: nothing is trimmed. Line breaks and
    /// tabs are the only control characters allowed.
    #[schema(
        example = "Hello, world",
        min_length = 1,
        max_length = 280,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub text: String,
    /// The author's user id. Optional: the author is always the caller, and naming anyone else
    /// is refused (403).
    #[schema(example = "73014444264448", pattern = "^[1-9][0-9]{0,15}$")]
    pub author: Option<String>,
}

/// A post as readers get it, in a feed or alone.
#[derive(Debug, Serialize, ToSchema)]
pub struct Post {
    /// Time-ordered: a newer post has a greater id.
    #[schema(example = "73014444264464")]
    pub id: String,
    /// The author's user id.
    #[schema(example = "73014444264448")]
    pub author: String,
    pub author_handle: Handle,
    #[schema(example = "Hello, world")]
    pub text: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<domain::Post> for Post {
    fn from(post: domain::Post) -> Self {
        Self {
            id: post.id.to_string(),
            author: post.author.to_string(),
            author_handle: post.author_handle.into(),
            text: post.text,
            created_at: post.created_at,
        }
    }
}

/// Publish a post by the caller.
#[utoipa::path(
    post,
    path = "/v1/posts",
    tag = "posts",
    request_body = CreatePostRequest,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Published", body = Post,
            headers(("location" = String, description = "The post"))),
        (status = 403, description = "`author` is someone else", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`text` (or `author`) is not valid; `errors` names it", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A backend the request needs is unavailable (the database, or Redis for a feed); the problem names it", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_post(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(request): Json<CreatePostRequest>,
) -> Result<Response, FeedError> {
    let post = state
        .feed
        .publish(&caller, request.text, request.author.as_deref())
        .await?;
    let location = format!("/v1/posts/{}", post.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(Post::from(post)),
    )
        .into_response())
}

/// A post. Posts are public to every user with a token.
#[utoipa::path(
    get,
    path = "/v1/posts/{id}",
    tag = "posts",
    params(("id" = String, Path, description = "The post's id", pattern = "^[1-9][0-9]{0,15}$")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The post", body = Post),
        (status = 404, description = "No such post, or it was deleted", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A backend the request needs is unavailable (the database, or Redis for a feed); the problem names it", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_post(
    State(state): State<AppState>,
    // Public to every user with a token: the token is checked, whose it is does not matter.
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Post>, FeedError> {
    let post = state.feed.post(post_in_path(&id)?).await?;
    Ok(axum::Json(post.into()))
}

/// Delete one of the caller's posts, from every feed.
///
/// Idempotent for the author: deleting the same post again answers 204 and changes nothing. For
/// anyone else a deleted post is gone (404), and a live one is not theirs to delete (403).
#[utoipa::path(
    delete,
    path = "/v1/posts/{id}",
    tag = "posts",
    params(("id" = String, Path, description = "The post's id", pattern = "^[1-9][0-9]{0,15}$")),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Deleted (now or before)"),
        (status = 403, description = "Someone else's post", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A backend the request needs is unavailable (the database, or Redis for a feed); the problem names it", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_post(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, FeedError> {
    state.feed.delete(&caller, post_in_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MAX_ID, PostId, UserId};

    #[test]
    fn ids_are_strings_in_json() {
        let post = domain::Post {
            id: PostId::new(MAX_ID).unwrap(),
            author: UserId::new(42).unwrap(),
            author_handle: domain::Handle::parse("ada").unwrap(),
            text: "Hello, world".to_owned(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        };

        let json = serde_json::to_value(Post::from(post)).unwrap();

        assert_eq!(json["id"], "9007199254740991");
        assert_eq!(json["author"], "42");
    }
}
