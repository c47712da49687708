//! `POST /api/v1/links`, `GET /api/v1/links/{code}`, `DELETE /api/v1/links/{code}`.
//!
//! Every route needs an API key (`Authorization: Bearer sk_…`), which the [`Owner`] extractor
//! checks before anything else is read. Reading and deleting a link also need it to be the key
//! that created the link: another key gets 403 (the code is public anyway, so hiding the link's
//! existence behind a 404 would protect nothing).

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

use super::{AppState, Owner};
use crate::{domain::Link, error::ShortenerError, service::CreateLink};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLinkRequest {
    /// The URL to redirect to: absolute `http` or `https`, at most 2,048 bytes, not on this
    /// shortener.
    #[schema(
        example = "https://www.rust-lang.org/learn",
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://"
    )]
    pub url: String,
    /// A custom code instead of a generated one: 3 to 64 of `A-Z a-z 0-9 _ -`.
    #[schema(example = "rust-learn", pattern = "^[A-Za-z0-9_-]{3,64}$")]
    pub alias: Option<String>,
    /// When the link stops redirecting (RFC 3339); must be in the future.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2030-01-01T00:00:00Z")]
    pub expires_at: Option<OffsetDateTime>,
    /// How many redirects the link serves in total, at least 1.
    #[schema(example = 100, minimum = 1)]
    pub max_visits: Option<u32>,
}

/// A link as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkResponse {
    #[schema(example = "Xk9fA2q")]
    pub code: String,
    #[schema(example = "http://localhost:8081/Xk9fA2q")]
    pub short_url: String,
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    pub max_visits: Option<u32>,
    /// Redirects served, bots included.
    pub visits: u64,
    /// Of those, the ones from bots and scripts (by User-Agent).
    pub bot_visits: u64,
}

impl LinkResponse {
    fn new(state: &AppState, link: Link) -> Self {
        Self {
            short_url: state.shortener.short_url(&link.code),
            code: link.code.to_string(),
            url: link.url,
            created_at: link.created_at,
            expires_at: link.expires_at,
            max_visits: link.max_visits,
            visits: link.visits,
            bot_visits: link.bot_visits,
        }
    }
}

/// Shorten a URL.
#[utoipa::path(
    post,
    path = "/api/v1/links",
    tag = "links",
    request_body = CreateLinkRequest,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "The link was created", body = LinkResponse,
            headers(("location" = String, description = "The link's API URL"))),
        (status = 409, description = "The alias is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; `errors` names it", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable and nothing was changed; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_link(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Json(request): Json<CreateLinkRequest>,
) -> Result<Response, ShortenerError> {
    let link = state
        .shortener
        .create(
            owner,
            CreateLink {
                url: request.url,
                alias: request.alias,
                expires_at: request.expires_at,
                max_visits: request.max_visits,
            },
        )
        .await?;
    let location = format!("/api/v1/links/{}", link.code);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(LinkResponse::new(&state, link)),
    )
        .into_response())
}

/// Read a link and its visit counts.
#[utoipa::path(
    get,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The link", body = LinkResponse),
        (status = 403, description = "Another API key created this link", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such link", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_link(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(code): Path<String>,
) -> Result<axum::Json<LinkResponse>, ShortenerError> {
    let link = state.shortener.link(owner, &code).await?;
    Ok(axum::Json(LinkResponse::new(&state, link)))
}

/// Delete a link. Its code is never reused.
#[utoipa::path(
    delete,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Another API key created this link", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such link", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable and nothing was changed; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_link(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(code): Path<String>,
) -> Result<StatusCode, ShortenerError> {
    state.shortener.delete(owner, &code).await?;
    Ok(StatusCode::NO_CONTENT)
}
