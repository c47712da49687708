//! Driving a router in tests without a socket: send a request through `oneshot`, read the whole
//! response, and assert on problem+json bodies.

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A response read to the end.
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "not JSON ({err}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header's value as text; panics if it is missing.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no `{name}` header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    pub fn location(&self) -> &str {
        self.header(header::LOCATION.as_str())
    }

    /// Asserts a problem+json response with this status, and returns its body.
    pub fn problem(&self, status: StatusCode) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = self.json();
        assert_eq!(body["status"], status.as_u16());
        body
    }

    /// Asserts a 422 that names `field` with a JSON pointer, and returns its body.
    pub fn invalid_field(&self, field: &str) -> Value {
        let body = self.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["errors"][0]["pointer"], format!("#/{field}"), "{body}");
        body
    }
}

pub async fn send_to(router: &Router, request: Request<Body>) -> TestResponse {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    TestResponse {
        status,
        headers,
        body,
    }
}

/// A request with a JSON body and, if given, `Authorization: Bearer <key>`.
pub fn json_request(method: Method, path: &str, key: Option<&str>, body: String) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    request.body(Body::from(body)).unwrap()
}
