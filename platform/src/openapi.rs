//! The API description: `/openapi.json`, generated from the code with utoipa, and a Swagger UI
//! page at `/docs`.
//!
//! The Swagger UI assets are compiled into the binary (`utoipa-swagger-ui`'s `vendored` feature),
//! so neither the build nor the page needs the network: it works on a laptop on a plane.

use axum::Router;
use utoipa::{
    Modify, PartialSchema, ToSchema,
    openapi::{
        Content, OpenApi, Ref, RefOr, Response, ResponseBuilder,
        path::{Operation, ParameterIn},
        security::{Http, HttpAuthScheme, SecurityScheme},
    },
};
use utoipa_swagger_ui::SwaggerUi;

use crate::problem::{CONTENT_TYPE, Problem};

/// `GET /openapi.json` and the `/docs` page that renders it.
///
/// The document is the system's own, plus the answers the shared stack gives on its routes'
/// behalf ([`document_stack_answers`]).
pub fn router(mut api: OpenApi) -> Router {
    document_stack_answers(&mut api);
    SwaggerUi::new("/docs").url("/openapi.json", api).into()
}

/// Adds to every operation the statuses that the shared extractors and middleware answer with
/// before its handler runs, so that a route's annotation lists only what its handler decides:
/// - a JSON request body ([`crate::extract::Json`]): 400 for bytes that are not JSON, 413 for a
///   body over the limit, 415 for another content type, 422 for JSON of the wrong shape;
/// - a path or query parameter ([`crate::extract::Path`], [`crate::extract::QueryParameters`]):
///   400 naming it;
/// - a security requirement ([`crate::auth::BearerKey`]): 401 for a missing or unknown key.
///
/// A status the operation already documents keeps its own description. Each is a problem+json
/// body.
pub fn document_stack_answers(api: &mut OpenApi) {
    let mut documented = false;
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.head,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, description) in stack_answers(operation) {
                documented = true;
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem_response(description));
            }
        }
    }
    if documented {
        let components = api.components.get_or_insert_with(Default::default);
        let mut schemas = vec![(Problem::name().into_owned(), Problem::schema())];
        Problem::schemas(&mut schemas);
        for (name, schema) in schemas {
            components.schemas.entry(name).or_insert(schema);
        }
    }
}

fn stack_answers(operation: &Operation) -> Vec<(&'static str, &'static str)> {
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|body| match body {
            RefOr::T(body) => body.content.keys().any(|media| media.contains("json")),
            RefOr::Ref(_) => true,
        });
    let parameters = operation.parameters.iter().flatten().any(|parameter| {
        matches!(parameter, RefOr::T(parameter)
            if matches!(parameter.parameter_in, ParameterIn::Path | ParameterIn::Query))
    });
    let mut answers = Vec::new();
    match (json_body, parameters) {
        (true, true) => answers.push((
            "400",
            "The body is not valid JSON, or a parameter is not valid; `errors` names it",
        )),
        (true, false) => answers.push(("400", "The body is not valid JSON")),
        (false, true) => answers.push(("400", "A parameter is not valid; `errors` names it")),
        (false, false) => {}
    }
    if json_body {
        answers.extend([
            ("413", "The body is too large"),
            ("415", "The body is not `application/json`"),
            (
                "422",
                "A member is missing, unknown or of the wrong type; `errors` names it",
            ),
        ]);
    }
    if operation
        .security
        .as_ref()
        .is_some_and(|security| !security.is_empty())
    {
        answers.push((
            "401",
            "Missing, malformed or unknown `Authorization: Bearer` key",
        ));
    }
    answers
}

fn problem_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            CONTENT_TYPE,
            Content::new(Some(Ref::from_schema_name(Problem::name()))),
        )
        .into()
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

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    use super::*;

    #[derive(serde::Deserialize, ToSchema)]
    #[allow(dead_code)]
    struct Body {
        name: String,
    }

    /// Creates a thing.
    #[utoipa::path(post, path = "/things/{id}", request_body = Body,
        params(("id" = String, Path)), security(("api_key" = [])),
        responses((status = 201), (status = 422, description = "The name is taken")))]
    #[allow(dead_code)]
    fn create() {}

    /// Reads the time.
    #[utoipa::path(get, path = "/time", responses((status = 200)))]
    #[allow(dead_code)]
    fn time() {}

    #[derive(utoipa::OpenApi)]
    #[openapi(paths(create, time))]
    struct Doc;

    fn statuses(api: &OpenApi, path: &str) -> Vec<(String, Option<String>)> {
        let item = &api.paths.paths[path];
        let operation = item.post.as_ref().or(item.get.as_ref()).unwrap();
        operation
            .responses
            .responses
            .iter()
            .map(|(status, response)| match response {
                RefOr::T(response) => (status.clone(), Some(response.description.clone())),
                RefOr::Ref(_) => (status.clone(), None),
            })
            .collect()
    }

    #[test]
    fn an_operation_documents_what_the_stack_answers_for_it() {
        let mut api = Doc::openapi();
        document_stack_answers(&mut api);

        let create = statuses(&api, "/things/{id}");
        let codes: Vec<&str> = create.iter().map(|(status, _)| status.as_str()).collect();
        assert_eq!(codes, ["201", "400", "401", "413", "415", "422"]);
        let described = |code: &str| {
            create
                .iter()
                .find(|(status, _)| status == code)
                .and_then(|(_, description)| description.clone())
                .unwrap()
        };
        assert_eq!(
            described("422"),
            "The name is taken",
            "the route's own words stay"
        );
        assert!(
            described("400").contains("parameter"),
            "{}",
            described("400")
        );

        let time = statuses(&api, "/time");
        assert_eq!(
            time.len(),
            1,
            "nothing is added where the stack answers nothing"
        );
        let schemas = &api.components.as_ref().unwrap().schemas;
        assert!(schemas.contains_key("Problem") && schemas.contains_key("FieldError"));
    }
}
