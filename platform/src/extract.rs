//! Request extractors whose rejections are problem+json and name the field.
//!
//! axum's own `Json` rejects with a plain-text body. Ours sorts the failures the way a client
//! can act on them:
//! - not `application/json` (or `…+json`): 415;
//! - a body over the router's `DefaultBodyLimit`: 413;
//! - bytes that are not JSON: 400, with serde's line and column;
//! - JSON of the wrong shape (a missing, unknown or mistyped member): 422, with a JSON pointer to
//!   the member, found with `serde_path_to_error`.
//!
//! [`QueryParameters`] does the same for a query string, and [`Path`] for path parameters: 400
//! naming the parameter.

use axum::{
    body::Bytes,
    extract::{
        FromRequest, FromRequestParts, RawPathParams, Request, path::ErrorKind,
        rejection::PathRejection,
    },
    http::{StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::problem::{BadParameter, FieldError, Problem};

/// A JSON request body; use it in place of `axum::Json` in handlers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&req) {
            return Err(Problem::status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
                .with_detail("Send the body as JSON with `Content-Type: application/json`."));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::status(status).with_detail("The request body is too large.")
            } else {
                Problem::status(StatusCode::BAD_REQUEST).with_detail(rejection.body_text())
            }
        })?;
        parse(&bytes).map(Json)
    }
}

/// Parses a JSON document into `T` with the same errors as the extractor.
///
/// Tracking the path costs on every member of every body, so a body is parsed without it first;
/// only one that fails is parsed again, tracking the path, to name the member (parsing is
/// deterministic, so the second pass fails where the first did).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes).or_else(|_| parse_tracking_path(bytes))
}

fn parse_tracking_path<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|err| rejection(err.path().to_string(), err.into_inner()))?;
    deserializer
        .end()
        .map_err(|err| rejection(String::new(), err))?;
    Ok(value)
}

fn rejection(path: String, err: serde_json::Error) -> Problem {
    use serde_json::error::Category;
    match err.classify() {
        Category::Data => {
            let pointer = field_pointer(&path, &err.to_string());
            Problem::invalid_field(FieldError::body(&pointer, strip_position(&err.to_string())))
        }
        Category::Syntax | Category::Eof | Category::Io => Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "The body is not valid JSON",
        )
        .with_detail(err.to_string()),
    }
}

/// The JSON pointer path (`url`, `items/0/name`) of the member an error is about.
///
/// serde reports a missing member at the path of the object that should hold it, and names the
/// member only in its message (``missing field `url` ``), so the name is taken from there.
fn field_pointer(path: &str, message: &str) -> String {
    let mut segments: Vec<&str> = path
        .split(['.', '[', ']'])
        .filter(|segment| !segment.is_empty())
        .collect();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    if let Some(member) = missing {
        segments.push(member);
    }
    segments.join("/")
}

/// `invalid type: … at line 1 column 9` reads better without the position for a member error.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// A query string's parameters, for an endpoint that takes the parameters `names`, each at most
/// once. Values are percent-decoded, with `+` as a space (`application/x-www-form-urlencoded`,
/// what browsers and HTTP clients send).
///
/// A parameter the endpoint does not take is refused rather than ignored, so that a misspelt
/// `limt=5` is a 400 naming `limt` and not a silent page of the default size; a repeated one is
/// refused too, rather than one of its values being picked. Each value's own meaning (a number in
/// range, a cursor) is the endpoint's to check, naming the parameter the same way
/// ([`BadParameter::new`]).
///
/// axum's `Query<T>` with serde was the alternative: it ignores unknown parameters unless `T`
/// denies them, keeps the last of repeated ones, and its rejection is plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParameters {
    values: Vec<(&'static str, String)>,
}

impl QueryParameters {
    /// Parses `query` (the part after `?`, as `axum::extract::RawQuery` gives it).
    pub fn parse(query: Option<&str>, names: &[&'static str]) -> Result<Self, BadParameter> {
        let mut values: Vec<(&'static str, String)> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let Some(known) = names.iter().copied().find(|known| *known == name) else {
                return Err(BadParameter::new(
                    name,
                    format!("is not a parameter of this endpoint ({})", names.join(", ")),
                ));
            };
            if values.iter().any(|(seen, _)| *seen == known) {
                return Err(BadParameter::new(known, "is given more than once"));
            }
            values.push((known, value.into_owned()));
        }
        Ok(Self { values })
    }

    /// The decoded value of `name`, if the query has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The path parameters of the matched route; use it in place of `axum::extract::Path`, with the
/// same targets: one value (`Path<String>`), a tuple in the route's order (`Path<(String, u64)>`)
/// or a struct whose fields are the parameters' names.
///
/// A parameter the client got wrong is a 400 problem naming it (`errors[0].parameter`): percent
/// escapes that do not decode to UTF-8 (`/%FF`), or a value that is not of the target type.
/// axum's own `Path` answers those with a `text/plain` 400. A route and a handler that disagree
/// (a handler asking for two parameters of a route with one) are the service's bug, not the
/// client's: a 500, logged.
///
/// Prefer `String` targets and the domain's own `parse` in the handler where the domain has a
/// rule for the value (a short code, a payment id), so that the rule and its message live in one
/// place.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_rejection(rejection, parts, state).await),
        }
    }
}

async fn path_rejection<S: Send + Sync>(
    rejection: PathRejection,
    parts: &mut Parts,
    state: &S,
) -> Problem {
    let PathRejection::FailedToDeserializePathParams(failed) = &rejection else {
        // `MissingPathParams`: the extractor is on a route without parameters.
        return Problem::internal(&rejection);
    };
    // The parameter's name: axum names it, or gives its position in the route (a tuple target),
    // or, for a lone value, neither.
    let (position, reason) = match failed.kind() {
        ErrorKind::InvalidUtf8InPathParam { key } => (
            Ok(key.clone()),
            "is not valid UTF-8 once percent-decoded".to_owned(),
        ),
        ErrorKind::ParseErrorAtKey {
            key, expected_type, ..
        } => (Ok(key.clone()), format!("is not a valid {expected_type}")),
        ErrorKind::DeserializeError { key, message, .. } => (Ok(key.clone()), message.clone()),
        ErrorKind::ParseErrorAtIndex {
            index,
            expected_type,
            ..
        } => (Err(Some(*index)), format!("is not a valid {expected_type}")),
        ErrorKind::ParseError { expected_type, .. } => {
            (Err(None), format!("is not a valid {expected_type}"))
        }
        ErrorKind::Message(message) => (Err(None), message.clone()),
        // `WrongNumberOfParameters`, `UnsupportedType`: the handler does not fit the route.
        _ => return Problem::internal(&rejection),
    };
    let name = match position {
        Ok(name) => Some(name),
        Err(index) => RawPathParams::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|params| {
                let names: Vec<String> = params.iter().map(|(name, _)| name.to_owned()).collect();
                match index {
                    Some(index) => names.get(index).cloned(),
                    None if names.len() == 1 => names.into_iter().next(),
                    None => None,
                }
            }),
    };
    match name {
        Some(name) => BadParameter::new(name, reason).into(),
        None => Problem::status(StatusCode::BAD_REQUEST)
            .with_detail(format!("A path parameter {reason}.")),
    }
}

fn has_json_content_type(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        url: String,
        max_visits: Option<u32>,
        tags: Option<Vec<Tag>>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Tag {
        name: String,
    }

    fn pointer_of(problem: &Problem) -> &str {
        problem.errors[0].pointer.as_deref().unwrap()
    }

    #[test]
    fn malformed_json_is_a_400() {
        let problem = parse::<Body>(br#"{"url": "#).unwrap_err();
        assert_eq!(problem.status, 400);
    }

    #[test]
    fn trailing_garbage_is_a_400() {
        let problem = parse::<Body>(br#"{"url": "x"} extra"#).unwrap_err();
        assert_eq!(problem.status, 400);
    }

    #[test]
    fn a_missing_member_is_a_422_that_names_it() {
        let problem = parse::<Body>(br#"{}"#).unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(pointer_of(&problem), "#/url");
    }

    #[test]
    fn a_mistyped_member_is_a_422_that_names_it() {
        let problem = parse::<Body>(br#"{"url": "x", "max_visits": "ten"}"#).unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(pointer_of(&problem), "#/max_visits");
        assert!(!problem.errors[0].detail.contains("line"));
    }

    #[test]
    fn an_unknown_member_is_a_422_that_names_it() {
        let problem = parse::<Body>(br#"{"url": "x", "expire_at": 1}"#).unwrap_err();
        assert_eq!(pointer_of(&problem), "#/expire_at");
    }

    const PAGE: &[&str] = &["limit", "cursor"];

    fn refused(query: &str) -> BadParameter {
        QueryParameters::parse(Some(query), PAGE).unwrap_err()
    }

    #[test]
    fn query_values_are_percent_decoded_and_absent_ones_are_none() {
        let parameters = QueryParameters::parse(Some("limit=%35&cursor=a+b%2Fc"), PAGE).unwrap();
        assert_eq!(parameters.get("limit"), Some("5"));
        assert_eq!(parameters.get("cursor"), Some("a b/c"));
        let empty = QueryParameters::parse(None, PAGE).unwrap();
        assert_eq!(empty.get("limit"), None);
    }

    #[test]
    fn an_unknown_or_repeated_query_parameter_is_refused_by_name() {
        assert_eq!(refused("limit=5&page=2").name, "page");
        assert_eq!(
            refused("limt=5").reason,
            "is not a parameter of this endpoint (limit, cursor)"
        );
        assert_eq!(refused("limit=5&limit=6").name, "limit");
        // Decoded before it is compared: `%6Cimit` is `limit`, given twice.
        assert_eq!(
            refused("limit=5&%6Cimit=6").reason,
            "is given more than once"
        );
    }

    mod path {
        use axum::{Router, body::Body, http::Request, routing::get};
        use tower::ServiceExt;

        use super::super::Path;
        use crate::problem::CONTENT_TYPE;

        fn app() -> Router {
            Router::new()
                .route("/items/{id}", get(|Path(id): Path<String>| async { id }))
                .route(
                    "/pairs/{name}/{count}",
                    get(|Path((name, count)): Path<(String, u32)>| async move {
                        format!("{name} {count}")
                    }),
                )
                .route(
                    "/numbers/{n}",
                    get(|Path(n): Path<u64>| async move { n.to_string() }),
                )
                .route(
                    "/mismatch/{id}",
                    get(|Path(pair): Path<(String, String)>| async move { pair.0 }),
                )
        }

        async fn send(path: &str) -> (u16, Option<String>, serde_json::Value) {
            let response = app()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|value| value.to_str().unwrap().to_owned());
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            (status, content_type, json)
        }

        async fn assert_names(path: &str, parameter: &str) {
            let (status, content_type, body) = send(path).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE), "{path}");
            assert_eq!(body["errors"][0]["parameter"], parameter, "{path}: {body}");
        }

        #[tokio::test]
        async fn a_parameter_that_is_not_utf8_is_a_400_problem_naming_it() {
            assert_names("/items/%FF", "id").await;
            assert_names("/pairs/a%C3%28b/7", "name").await;
        }

        #[tokio::test]
        async fn a_parameter_of_the_wrong_type_is_a_400_problem_naming_it() {
            assert_names("/numbers/ten", "n").await;
            assert_names("/pairs/a/-1", "count").await;
        }

        #[tokio::test]
        async fn good_parameters_are_decoded() {
            assert_eq!(send("/items/caf%C3%A9").await.0, 200);
            assert_eq!(send("/pairs/a/7").await.0, 200);
        }

        #[tokio::test]
        async fn a_handler_that_does_not_fit_its_route_is_a_500() {
            let (status, content_type, _) = send("/mismatch/x").await;
            assert_eq!(status, 500);
            assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE));
        }
    }

    #[test]
    fn a_nested_member_gets_a_full_pointer() {
        let problem = parse::<Body>(br#"{"url": "x", "tags": [{"name": "a"}, {}]}"#).unwrap_err();
        assert_eq!(pointer_of(&problem), "#/tags/1/name");
    }
}
