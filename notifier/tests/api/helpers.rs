//! A fresh notifier per test, on its own database, driven through its router.

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    http::{Method, Request},
};
use notifier::{Application, Settings};
pub use platform::testing::http::{TestResponse, json_request, send_to};
use platform::{clock::ManualClock, testing::TestBackends};
use serde_json::{Value, json};

pub struct TestApp {
    pub router: Router,
    /// Held so that the test's database lives as long as the test.
    _backends: TestBackends,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let backends = TestBackends::from_env().await;
        let app = Application::build_with(
            Settings::for_tests(),
            backends.database.clone(),
            Arc::new(ManualClock::starting_now()),
        )
        .await
        .unwrap_or_else(|err| panic!("building on {}: {err:?}", backends.describe()));
        Self {
            router: app.router(),
            _backends: backends,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send_to(&self.router, request).await
    }

    pub async fn put_user(&self, id: &str, body: Value) -> TestResponse {
        self.send(json_request(
            Method::PUT,
            &format!("/v1/users/{id}"),
            None,
            body.to_string(),
        ))
        .await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    pub async fn notify(&self, body: Value) -> TestResponse {
        self.send(json_request(
            Method::POST,
            "/v1/notifications",
            None,
            body.to_string(),
        ))
        .await
    }

    /// A user reachable on every channel, opted out of SMS.
    pub async fn ada(&self) {
        let response = self
            .put_user(
                "ada",
                json!({
                    "email": "ada@example.com",
                    "phone": "+442071838750",
                    "push_tokens": ["device-1"],
                    "webhook_url": "https://example.com/hooks",
                    "preferences": {"sms": false},
                }),
            )
            .await;
        assert_eq!(response.status, 200, "{:?}", response.body);
    }
}
