//! The API description: `/openapi.json`, generated from the code with utoipa, and a Swagger UI
//! page at `/docs`.
//!
//! The Swagger UI assets are compiled into the binary (`utoipa-swagger-ui`'s `vendored` feature),
//! so neither the build nor the page needs the network: it works on a laptop on a plane.

use axum::Router;
use utoipa::{
    Modify,
    openapi::{
        OpenApi,
        security::{Http, HttpAuthScheme, SecurityScheme},
    },
};
use utoipa_swagger_ui::SwaggerUi;

/// `GET /openapi.json` and the `/docs` page that renders it.
pub fn router(api: OpenApi) -> Router {
    SwaggerUi::new("/docs").url("/openapi.json", api).into()
}

/// Adds the `api_key` bearer scheme that operations reference with
/// `security(("api_key" = []))`; use it as `#[openapi(modifiers(&BearerApiKey))]`.
#[derive(Debug)]
pub struct BearerApiKey;

impl Modify for BearerApiKey {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some("An API key, `sk_` followed by 40 hex digits.".into());
        components.add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}
