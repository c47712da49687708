//! A fresh feed service per test, on its own database, driven through its router; and users made
//! through the API, each with their token.

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use feed_service::{Application, Settings};
pub use platform::testing::http::{TestResponse, json_request, send_to};
use platform::{clock::ManualClock, testing::TestBackends};
use serde_json::{Value, json};

pub struct TestApp {
    pub router: Router,
    pub clock: ManualClock,
    pub backends: TestBackends,
}

/// A user made through `POST /v1/users`.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub token: String,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let backends = TestBackends::from_env().await;
        let clock = ManualClock::starting_now();
        let app = Application::build_with(
            Settings::for_tests(),
            backends.database.clone(),
            Arc::new(clock.clone()),
        )
        .await
        .unwrap_or_else(|err| panic!("building on {}: {err:?}", backends.describe()));
        Self {
            router: app.router(),
            clock,
            backends,
        }
    }

    /// Another instance of the service on the same database and clock, with `settings` (its own
    /// instance number, or on purpose the same): its router.
    pub async fn another_instance(&self, settings: Settings) -> Router {
        let (database, _cache) = self.backends.another_instance().await;
        Application::build_with(settings, database, Arc::new(self.clock.clone()))
            .await
            .unwrap()
            .router()
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send_to(&self.router, request).await
    }

    pub async fn sign_up(&self, handle: &str) -> TestResponse {
        self.send(json_request(
            Method::POST,
            "/v1/users",
            None,
            json!({ "handle": handle }).to_string(),
        ))
        .await
    }

    /// Signs up a user that must be created.
    pub async fn user(&self, handle: &str) -> User {
        let response = self.sign_up(handle).await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        let body = response.json();
        User {
            id: body["id"].as_str().expect("the id is a string").to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// A request without a body, with `token` as the bearer if given.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>) -> TestResponse {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    pub async fn get(&self, path: &str, as_user: &User) -> TestResponse {
        self.call(Method::GET, path, Some(&as_user.token)).await
    }

    pub async fn post_as(&self, author: &User, body: Value) -> TestResponse {
        self.send(post_request(author, body)).await
    }

    /// Publishes a post that must be created, and returns its id.
    pub async fn post(&self, author: &User, text: &str) -> String {
        let response = self.post_as(author, json!({ "text": text })).await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        response.json()["id"].as_str().unwrap().to_owned()
    }

    pub async fn delete_post(&self, id: &str, as_user: &User) -> TestResponse {
        self.call(
            Method::DELETE,
            &format!("/v1/posts/{id}"),
            Some(&as_user.token),
        )
        .await
    }

    /// `PUT` (follow) or `DELETE` (unfollow) `/v1/users/{id}/following/{target}` as `caller`.
    pub async fn following(
        &self,
        method: Method,
        caller: &User,
        id: &str,
        target: &str,
    ) -> TestResponse {
        self.call(
            method,
            &format!("/v1/users/{id}/following/{target}"),
            Some(&caller.token),
        )
        .await
    }

    /// `reader` follows `author`; it must succeed.
    pub async fn follow(&self, reader: &User, author: &User) {
        let response = self
            .following(Method::PUT, reader, &reader.id, &author.id)
            .await;
        assert_eq!(
            response.status,
            StatusCode::NO_CONTENT,
            "{:?}",
            response.body
        );
    }

    pub async fn feed(&self, reader: &User, query: &str) -> TestResponse {
        self.get(&format!("/v1/users/{}/feed{query}", reader.id), reader)
            .await
    }

    /// One page of `reader`'s feed, which must be served: its post ids and its next cursor.
    pub async fn page(&self, reader: &User, query: &str) -> (Vec<String>, Option<String>) {
        let response = self.feed(reader, query).await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        let body = response.json();
        let ids = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|post| post["id"].as_str().unwrap().to_owned())
            .collect();
        let next = body["next_cursor"].as_str().map(str::to_owned);
        (ids, next)
    }

    /// The whole first page of `reader`'s feed, up to 100 posts.
    pub async fn feed_ids(&self, reader: &User) -> Vec<String> {
        self.page(reader, "?limit=100").await.0
    }
}

/// `POST /v1/posts` as `author`.
pub fn post_request(author: &User, body: Value) -> Request<Body> {
    json_request(
        Method::POST,
        "/v1/posts",
        Some(&author.token),
        body.to_string(),
    )
}

/// Asserts a problem with this status whose `errors` name the query or path parameter `name`.
pub fn names_parameter(response: &TestResponse, status: StatusCode, name: &str) {
    let body = response.problem(status);
    assert_eq!(body["errors"][0]["parameter"], name, "{body}");
}
