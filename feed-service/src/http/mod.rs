//! The HTTP API, one module per feature, merged here with its OpenAPI description.
//!
//! | method and path | module |
//! |---|---|
//! | `POST /v1/users`, `GET /v1/users/{id}` | [`users`] |
//! | `PUT`/`DELETE /v1/users/{id}/following/{target}` | [`following`] |
//! | `POST /v1/posts`, `GET`/`DELETE /v1/posts/{id}` | [`posts`] |
//! | `GET /v1/users/{id}/feed` | [`feed`] |
//!
//! Every route but `POST /v1/users` needs a token (`Authorization: Bearer sk_…`), and acts for
//! the token's user ([`Caller`]). The shared endpoints (`/healthz`, `/readyz`, `/metrics`,
//! `/openapi.json`, `/docs`) and the middleware come from `platform::http::service`; the fault
//! switches (`/admin/faults`, the admin token's) from `platform::fault`.
//!
//! The JSON of each request and answer is a type of the feature's module ([`posts::Post`],
//! [`users::Profile`], …), made from the domain's (`crate::domain`), which knows nothing of JSON
//! or OpenAPI. **Ids are strings in JSON** (`"73014444264448"`), never numbers. JavaScript parses
//! every JSON number as a double, exact only up to 2^53. Our ids stay below that today (so that
//! they are exact as Redis sorted-set scores too), but a string keeps clients safe if the layout
//! ever widens, and spares every client the question. Twitter's API v1.1 sent each id twice,
//! `id` and `id_str`, for this reason (developer.x.com, "X IDs"); sending only the string avoids
//! the trap entirely.

pub mod feed;
pub mod following;
pub mod posts;
pub mod users;

use std::sync::Arc;

use axum::{Router, extract::FromRequestParts, http::request::Parts};
use platform::{auth::BearerKey, health::Readiness, openapi::BearerApiKey, problem::Problem};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    SYSTEM,
    domain::{Account, PostId, UserId},
    error::FeedError,
    service::Feed,
};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub feed: Arc<Feed>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sdlab feed service",
        description = "A news feed: users follow each other, post, and read a home feed of their \
                       own posts and those of everyone they follow, newest first, a page at a \
                       time. Sign up with `POST /v1/users`, then send the token it returns as \
                       `Authorization: Bearer sk_…`. Ids are strings. Errors are \
                       `application/problem+json` (RFC 9457)."
    ),
    modifiers(&BearerApiKey),
    tags(
        (name = "users", description = "Signing up, profiles, following"),
        (name = "posts", description = "Publishing, reading and deleting posts"),
        (name = "feed", description = "Home feeds"),
    )
)]
struct ApiDoc;

/// The feed's routes and their OpenAPI document.
pub fn routes(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(users::sign_up))
        .routes(routes!(users::get_user))
        .routes(routes!(following::follow, following::unfollow))
        .routes(routes!(posts::create_post))
        .routes(routes!(posts::get_post, posts::delete_post))
        .routes(routes!(feed::home_feed))
        .with_state(state)
        .split_for_parts()
}

/// The complete service: the routes above and the fault switches' (`/admin/faults`, outside the
/// OpenAPI document, as admin routes are) inside the shared stack.
pub fn app(state: AppState, readiness: Readiness, faults: Router) -> Router {
    let (routes, api) = routes(state);
    platform::http::service(SYSTEM, routes.merge(faults), readiness, api)
}

/// The user a request acts for, from its token. A `FromRequestParts` extractor, so it runs before
/// the body is read: a missing or unknown token is a 401 whatever the body holds.
pub struct Caller(pub Account);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let BearerKey(key) = BearerKey::from_request_parts(parts, state).await?;
        Ok(Caller(state.feed.authenticate(&key).await?))
    }
}

/// A user id from the path; one that cannot be an id names no user (404).
fn user_in_path(id: &str) -> Result<UserId, FeedError> {
    UserId::parse(id).ok_or(FeedError::UserNotFound)
}

/// A post id from the path; one that cannot be an id names no post (404).
fn post_in_path(id: &str) -> Result<PostId, FeedError> {
    PostId::parse(id).ok_or(FeedError::PostNotFound)
}
