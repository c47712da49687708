//! The HTTP API, merged with its OpenAPI description.
//!
//! | method and path | module |
//! |---|---|
//! | `PUT`/`GET /v1/users/{id}` | [`users`] |
//! | `POST /v1/notifications`, `GET /v1/notifications/{id}` | [`notifications`] |
//! | `GET /v1/dlq`, `POST /v1/dlq/{id}/redrive` | [`dlq`] |
//!
//! Every route needs a caller's API key (`Authorization: Bearer sk_…`): the services and clients
//! that send notifications each hold one, and any caller may use every route (`DESIGN.md`, "Who
//! may call what"). The payments service's events reach it through a topic, not through here.
//! The shared endpoints (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`) and the
//! middleware come from `platform::http::service`; the fault switches (`/admin/faults`, the admin
//! token's, and not in the OpenAPI document) from `platform::fault`.

pub mod dlq;
pub mod notifications;
mod schemas;
pub mod users;

use std::sync::Arc;

use axum::{
    Router,
    extract::FromRequestParts,
    http::{StatusCode, request::Parts},
};
use platform::{
    auth::BearerKey,
    health::Readiness,
    openapi::BearerApiKey,
    problem::{FieldError, Problem},
};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{SYSTEM, domain::CallerId, service::Notifier};

#[derive(Clone)]
pub struct AppState {
    pub notifier: Arc<Notifier>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sdlab notifier",
        description = "Notifications over email, SMS, push and webhooks, with user preferences \
                       and templates. Every route needs a caller's API key, sent as \
                       `Authorization: Bearer sk_…`. Errors are `application/problem+json` \
                       (RFC 9457)."
    ),
    modifiers(&BearerApiKey),
    tags(
        (name = "users", description = "Contacts and preferences"),
        (name = "notifications", description = "Sending and tracking notifications"),
        (name = "dead letters", description = "Deliveries that failed for good, and redrive"),
    )
)]
struct ApiDoc;

pub fn routes(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(users::put_user, users::get_user))
        .routes(routes!(notifications::create_notification))
        .routes(routes!(notifications::get_notification))
        .routes(routes!(dlq::list_dead_letters))
        .routes(routes!(dlq::redrive))
        .with_state(state)
        .split_for_parts()
}

/// The service's router: the API, the fault switches' routes `faults`, and the shared endpoints.
pub fn app(state: AppState, readiness: Readiness, faults: Router) -> Router {
    let (routes, api) = routes(state);
    platform::http::service(SYSTEM, routes.merge(faults), readiness, api)
}

/// The caller a request acts for, from its API key. A `FromRequestParts` extractor, so it runs
/// before the body is read: a missing or unknown key is a 401 whatever the body holds.
pub struct Caller(pub CallerId);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let BearerKey(key) = BearerKey::from_request_parts(parts, state).await?;
        Ok(Caller(state.notifier.authenticate(&key).await?))
    }
}

/// The `{id}` of a notification or a dead letter: a UUID, or a 400 that names the parameter.
/// Not a 404: a malformed id is a mistake in the request, not a search that found nothing.
fn uuid_in_path(id: &str) -> Result<Uuid, Problem> {
    Uuid::try_parse(id).map_err(|_| {
        Problem::status(StatusCode::BAD_REQUEST)
            .with_error(FieldError::parameter("id", "must be a UUID"))
    })
}
