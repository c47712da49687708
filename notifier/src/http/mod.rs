//! The HTTP API, merged with its OpenAPI description.
//!
//! | method and path | module |
//! |---|---|
//! | `PUT`/`GET /v1/users/{id}` | [`users`] |
//! | `POST /v1/notifications`, `GET /v1/notifications/{id}` | [`notifications`] |
//! | `GET /v1/dlq`, `POST /v1/dlq/{id}/redrive` | [`dlq`] |
//!
//! An internal service: the systems that send notifications call it on the private network (in
//! the lab, the payments service's events reach it through a topic), so it has no client keys of
//! its own.

pub mod dlq;
pub mod notifications;
mod schemas;
pub mod users;

use std::sync::Arc;

use axum::Router;
use platform::health::Readiness;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{SYSTEM, service::Notifier};

#[derive(Clone)]
pub struct AppState {
    pub notifier: Arc<Notifier>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sdlab notifier",
        description = "Notifications over email, SMS, push and webhooks, with user preferences \
                       and templates. Errors are `application/problem+json` (RFC 9457)."
    ),
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

pub fn app(state: AppState, readiness: Readiness) -> Router {
    let (routes, api) = routes(state);
    platform::http::service(SYSTEM, routes, readiness, api)
}
