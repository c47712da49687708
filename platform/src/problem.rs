//! RFC 9457 problem details: the one error body every sdlab service sends.
//!
//! A problem has a `type` (a URI naming the kind of error, `about:blank` when the HTTP status says
//! it all), a `title` (the same for every occurrence of that type), the `status`, an optional
//! `detail` for this occurrence, and, for invalid input, an `errors` list that names each field:
//! `{"pointer": "#/url", "detail": "..."}` for a JSON body member (the shape of RFC 9457's own
//! example), `{"parameter": "limit", ...}` for a query, path or header parameter.
//!
//! Our type URIs are `tag:` URIs (RFC 4151), which RFC 9457 section 4 recommends for types that
//! are not meant to be dereferenced: `tag:sdlab.dev,2026:alias-taken`.
//!
//! A 500 never carries internals: build it with [`Problem::internal`], which logs the cause chain
//! and answers with a generic detail.

use std::borrow::Cow;

use axum::{
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

pub const CONTENT_TYPE: &str = "application/problem+json";
const TAG_PREFIX: &str = "tag:sdlab.dev,2026:";

/// An `application/problem+json` response body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` when the status code says it all.
    #[serde(rename = "type")]
    #[schema(example = "tag:sdlab.dev,2026:validation")]
    pub type_uri: Cow<'static, str>,
    /// A short summary that is the same for every occurrence of this type.
    pub title: Cow<'static, str>,
    /// The HTTP status code, repeated for clients that only keep the body.
    pub status: u16,
    /// What went wrong this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For invalid input: one entry per offending field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    #[schema(ignore)]
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// One invalid field: a JSON pointer into the body, or the name of a parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON pointer (RFC 6901, in URI fragment form) to the body member, e.g. `#/url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// Name of the query, path or header parameter, e.g. `limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    pub detail: String,
}

impl FieldError {
    /// An error in the JSON body member at `path` (`"url"`, or `"items/0/name"` for nested ones).
    pub fn body(path: &str, detail: impl Into<String>) -> Self {
        Self {
            pointer: Some(format!("#/{path}")),
            parameter: None,
            detail: detail.into(),
        }
    }

    /// An error in a query, path or header parameter.
    pub fn parameter(name: &str, detail: impl Into<String>) -> Self {
        Self {
            pointer: None,
            parameter: Some(name.to_owned()),
            detail: detail.into(),
        }
    }
}

impl Problem {
    /// A problem of a named type: `slug` becomes `tag:sdlab.dev,2026:<slug>`.
    pub fn new(status: StatusCode, slug: &str, title: impl Into<Cow<'static, str>>) -> Self {
        Self {
            type_uri: Cow::Owned(format!("{TAG_PREFIX}{slug}")),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// A problem whose status code says it all (`type: about:blank`, title = reason phrase).
    pub fn status(status: StatusCode) -> Self {
        Self {
            type_uri: Cow::Borrowed("about:blank"),
            title: Cow::Borrowed(status.canonical_reason().unwrap_or("Error")),
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// 422 for input that parsed but is not acceptable; `error` names the field.
    pub fn invalid_field(error: FieldError) -> Self {
        let detail = match (&error.pointer, &error.parameter) {
            (Some(pointer), _) => format!("{}: {}", pointer.trim_start_matches("#/"), error.detail),
            (None, Some(parameter)) => format!("{parameter}: {}", error.detail),
            (None, None) => error.detail.clone(),
        };
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Your request is not valid",
        )
        .with_detail(detail)
        .with_error(error)
    }

    /// 500 without internals. The cause chain is logged here, with the request's span.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %error_chain(error), "internal error");
        Self::status(StatusCode::INTERNAL_SERVER_ERROR)
            .with_detail("An internal error occurred; it has been logged.")
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_error(mut self, error: FieldError) -> Self {
        self.errors.push(error);
        self
    }

    /// Adds a response header (`WWW-Authenticate` on a 401, `Retry-After` on a 409 or 503).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).expect("a problem always serializes");
        let mut response = (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            body,
        )
            .into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// An error and its causes, outermost first: `connecting to the upstream: connection refused`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

/// A query parameter that is not accepted: a 400 naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` {reason}")]
pub struct BadParameter {
    pub name: String,
    pub reason: String,
}

impl BadParameter {
    pub fn new(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

impl From<BadParameter> for Problem {
    fn from(bad: BadParameter) -> Self {
        Problem::status(StatusCode::BAD_REQUEST)
            .with_detail(format!("{bad}."))
            .with_error(FieldError::parameter(&bad.name, bad.reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_problem_is_sent_as_problem_json_with_its_status_and_headers() {
        let problem = Problem::status(StatusCode::UNAUTHORIZED)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));

        let response = problem.into_response();

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["type"], "about:blank");
        assert_eq!(json["title"], "Unauthorized");
        assert_eq!(json["status"], 401);
    }

    #[test]
    fn an_invalid_field_names_the_field_in_the_detail_and_the_errors() {
        let problem = Problem::invalid_field(FieldError::body("url", "must use http or https"));

        let json = serde_json::to_value(&problem).unwrap();

        assert_eq!(json["status"], 422);
        assert_eq!(json["detail"], "url: must use http or https");
        assert_eq!(json["errors"][0]["pointer"], "#/url");
    }

    #[test]
    fn an_internal_problem_hides_its_cause() {
        let cause = std::io::Error::other("password authentication failed for user app");

        let json = serde_json::to_value(Problem::internal(&cause)).unwrap();

        assert_eq!(json["status"], 500);
        assert!(!json.to_string().contains("password"));
    }

    #[test]
    fn a_bad_parameter_is_a_400_problem_naming_it() {
        let problem = Problem::from(BadParameter::new("limit", "must be 1 to 100"));
        assert_eq!(problem.status, 400);
        assert_eq!(problem.errors[0].parameter.as_deref(), Some("limit"));
    }
}
