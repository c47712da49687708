//! The decision API, with its OpenAPI description.
//!
//! | method and path | module |
//! |---|---|
//! | `POST /api/v1/check` | [`check`] |
//! | `GET /api/v1/rules` | [`check`] |
//!
//! The shared endpoints (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`) and the
//! middleware come from `platform::http::service`. The gateway is a separate listener
//! (`gateway.rs`), since it forwards every path to its upstream.

pub mod check;

use std::sync::Arc;

use axum::Router;
use platform::health::Readiness;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::limiter::Limiter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sdlab rate limiter",
        description = "A decision API in the manner of Envoy's rate-limit service: ask whether a \
                       client may spend units of a rule. 200 when allowed, 429 when not, both \
                       with `RateLimit-Policy` and `RateLimit` headers \
                       (draft-ietf-httpapi-ratelimit-headers). Errors are \
                       `application/problem+json` (RFC 9457)."
    ),
    tags((name = "decisions", description = "Asking the limiter")),
)]
struct ApiDoc;

pub fn routes(limiter: Arc<Limiter>) -> (Router, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(check::check))
        .routes(routes!(check::list_rules))
        .with_state(limiter)
        .split_for_parts()
}

/// The complete service: the routes above inside the shared stack.
pub fn app(limiter: Arc<Limiter>, readiness: Readiness) -> Router {
    let (routes, api) = routes(limiter);
    platform::http::service(crate::SYSTEM, routes, readiness, api)
}
