//! The HTTP API, merged with its OpenAPI description.
//!
//! | method and path | module |
//! |---|---|
//! | `POST /v1/payments`, `GET /v1/payments/{id}`, `GET /v1/payments` | [`payments`] |
//!
//! Every route needs a client's API key (`Authorization: Bearer sk_…`). The shared endpoints
//! (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`) and the middleware come from
//! `platform::http::service`; the fault switches (`/admin/faults`, the admin token's, and not in
//! the OpenAPI document) from `platform::fault`.

pub mod payments;

use std::sync::Arc;

use axum::{Router, extract::FromRequestParts, http::request::Parts};
use platform::{auth::BearerKey, health::Readiness, openapi::BearerApiKey, problem::Problem};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{SYSTEM, domain::ClientId, service::Payments, settings::Idempotency};

#[derive(Clone)]
pub struct AppState {
    pub payments: Arc<Payments>,
    pub idempotency: Idempotency,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sdlab idempotent payments",
        description = "A payments API that never charges twice. Send every `POST /v1/payments` \
                       with an `Idempotency-Key`; retry with the same key and the same body as \
                       often as needed. Errors are `application/problem+json` (RFC 9457)."
    ),
    modifiers(&BearerApiKey),
    tags((name = "payments", description = "Taking and reading payments"))
)]
struct ApiDoc;

pub fn routes(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(payments::create_payment, payments::list_payments))
        .routes(routes!(payments::get_payment))
        .with_state(state)
        .split_for_parts()
}

/// The service's router: the API, the fault switches' routes `faults`, and the shared endpoints.
pub fn app(state: AppState, readiness: Readiness, faults: Router) -> Router {
    let (routes, api) = routes(state);
    platform::http::service(SYSTEM, routes.merge(faults), readiness, api)
}

/// The client a request acts for, from its API key. A `FromRequestParts` extractor, so it runs
/// before the body is read: an unknown key is a 401 whatever the body holds.
pub struct Client(pub ClientId);

impl FromRequestParts<AppState> for Client {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let BearerKey(key) = BearerKey::from_request_parts(parts, state).await?;
        let client = state.payments.authenticate(&key).await?;
        Ok(Client(client.id))
    }
}
