//! The decision API, with its OpenAPI description.
//!
//! | method and path | module |
//! |---|---|
//! | `POST /api/v1/check` | [`check`] |
//! | `GET /api/v1/rules` | [`check`] |
//!
//! Both need a caller's API key (`Authorization: Bearer sk_…`), and a caller sees and checks only
//! the rules it is granted (`rules/callers.rs`); the gateway's rules are the gateway's alone.
//! The shared endpoints (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`) and the
//! middleware come from `platform::http::service`, and the fault switch (`/admin/faults`, from
//! `platform::fault`) is merged in beside the API, outside its OpenAPI document: it is for the
//! operator on this machine, not for callers. The gateway is a separate listener (`gateway.rs`),
//! since it forwards every path to its upstream.

pub mod check;

use std::sync::Arc;

use axum::{Router, extract::FromRequestParts, http::request::Parts};
use platform::{auth::BearerKey, health::Readiness, openapi::BearerApiKey, problem::Problem};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    limiter::Limiter,
    rules::{self, Callers},
};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub limiter: Arc<Limiter>,
    pub callers: Arc<Callers>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sdlab rate limiter",
        description = "A decision API in the manner of Envoy's rate-limit service: ask whether a \
                       client may spend units of a rule. 200 when allowed, 429 when not, both \
                       with `RateLimit-Policy` and `RateLimit` headers \
                       (draft-ietf-httpapi-ratelimit-headers). Send a caller's API key as \
                       `Authorization: Bearer sk_…`; a caller checks only the rules it is \
                       granted. Errors are `application/problem+json` (RFC 9457)."
    ),
    modifiers(&BearerApiKey),
    tags((name = "decisions", description = "Asking the limiter")),
)]
struct ApiDoc;

pub fn routes(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(check::check))
        .routes(routes!(check::list_rules))
        .with_state(state)
        .split_for_parts()
}

/// The complete service: the routes above and `admin` (the fault switch) inside the shared
/// stack.
pub fn app(state: AppState, readiness: Readiness, admin: Router) -> Router {
    let (routes, api) = routes(state);
    platform::http::service(crate::SYSTEM, routes.merge(admin), readiness, api)
}

/// The caller a request comes from, by its API key. A `FromRequestParts` extractor, so it runs
/// before the body is read: a missing or unknown key is a 401 whatever the body holds.
pub struct Caller(pub Arc<rules::Caller>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let BearerKey(key) = BearerKey::from_request_parts(parts, state).await?;
        state
            .callers
            .authenticate(&key)
            .map(Caller)
            .ok_or_else(|| platform::auth::unauthorized("The API key is not known."))
    }
}
