//! The HTTP API, one module per feature, merged here with its OpenAPI description.
//!
//! | method and path | module |
//! |---|---|
//! | `POST /api/v1/keys` | [`keys`] |
//! | `POST /api/v1/links`, `GET`/`DELETE /api/v1/links/{code}` | [`links`] |
//! | `GET`/`HEAD /{code}` | [`redirect`] |
//!
//! The shared endpoints (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`) and the
//! middleware come from `platform::http::service`. The fault switches (`/admin/faults`, from
//! `platform::fault`) are merged in beside the API, outside its OpenAPI document: they are for
//! the operator on this machine, not for clients.

pub mod keys;
pub mod links;
pub mod redirect;

use std::sync::Arc;

use axum::{Router, extract::FromRequestParts, http::request::Parts};
use platform::{auth::BearerKey, health::Readiness, openapi::BearerApiKey, problem::Problem};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{domain::OwnerId, service::Shortener, settings::RedirectPolicy};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub shortener: Arc<Shortener>,
    pub redirect: RedirectPolicy,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sdlab URL shortener",
        description = "Short links with custom aliases, expiry, visit limits and visit counts. \
                       Create an API key with `POST /api/v1/keys`, then send it as \
                       `Authorization: Bearer sk_…`. Errors are `application/problem+json` \
                       (RFC 9457)."
    ),
    modifiers(&BearerApiKey),
    tags(
        (name = "keys", description = "API keys: the credential that owns links"),
        (name = "links", description = "Creating, reading and deleting links"),
        (name = "redirect", description = "Following a short link"),
    )
)]
struct ApiDoc;

/// The shortener's routes and their OpenAPI document.
pub fn routes(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(keys::create_key))
        .routes(routes!(links::create_link))
        .routes(routes!(links::get_link, links::delete_link))
        .routes(routes!(redirect::follow, redirect::peek))
        .with_state(state)
        .split_for_parts()
}

/// The complete service: the routes above and `admin` (the fault switches) inside the shared
/// stack.
pub fn app(state: AppState, readiness: Readiness, admin: Router) -> Router {
    let (routes, api) = routes(state);
    platform::http::service(crate::SYSTEM, routes.merge(admin), readiness, api)
}

/// The API key a request acts as, checked against the stored keys. A `FromRequestParts`
/// extractor, so it runs before the body is read: a missing, malformed or unknown key is a 401
/// whatever the body holds.
pub struct Owner(pub OwnerId);

impl FromRequestParts<AppState> for Owner {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let BearerKey(key) = BearerKey::from_request_parts(parts, state).await?;
        Ok(Owner(state.shortener.authenticate(&key).await?))
    }
}
