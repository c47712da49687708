//! The decision API: statuses, bodies, headers and errors.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use platform::testing::http::{TestResponse, json_request, send_to};
use rate_limiter::{Application, Settings, rules};
use serde_json::{Value, json};

use crate::helpers::{clock, store_with_clock};

struct TestApi {
    router: axum::Router,
    clock: platform::clock::ManualClock,
}

impl TestApi {
    async fn spawn() -> Self {
        let clock = clock();
        let store = store_with_clock(&clock).await;
        let rules = rules::parse(rules::DEFAULT_RULES, rules::Format::Toml, "rules.toml").unwrap();
        let app = Application::build_with(Settings::for_tests(), rules, store, "test".into())
            .await
            .unwrap();
        Self {
            router: app.router(),
            clock,
        }
    }

    async fn check(&self, body: Value) -> TestResponse {
        send_to(
            &self.router,
            json_request(Method::POST, "/api/v1/check", None, body.to_string()),
        )
        .await
    }
}

#[tokio::test]
async fn an_allowed_request_is_200_with_the_counts_and_the_ratelimit_headers() {
    let api = TestApi::spawn().await;
    let response = api
        .check(json!({"rule": "per-user", "key": "user:42"}))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.json(),
        json!({"allowed": true, "limit": 20, "remaining": 19, "reset_after_ms": 100,
               "retry_after_ms": 0, "delay_ms": 0})
    );
    assert_eq!(response.header("ratelimit-policy"), "\"per-user\";q=20;w=2");
    assert_eq!(response.header("ratelimit"), "\"per-user\";r=19;t=1");
    assert!(response.headers.get("retry-after").is_none());
}

#[tokio::test]
async fn a_rejected_request_is_429_with_a_retry_after_rounded_up() {
    let api = TestApi::spawn().await;
    api.check(json!({"rule": "per-user", "key": "user:42", "cost": 20}))
        .await;
    let response = api
        .check(json!({"rule": "per-user", "key": "user:42"}))
        .await;
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    let body = response.json();
    assert_eq!(body["allowed"], false);
    assert_eq!(body["remaining"], 0);
    assert_eq!(body["retry_after_ms"], 100);
    assert_eq!(body["reset_after_ms"], 2000);
    // 100 ms to wait: one whole second, never zero.
    assert_eq!(response.header("retry-after"), "1");
    assert_eq!(response.header("ratelimit"), "\"per-user\";r=0;t=2");
}

#[tokio::test]
async fn a_peek_answers_without_spending() {
    let api = TestApi::spawn().await;
    api.check(json!({"rule": "per-user", "key": "k", "cost": 5}))
        .await;
    for _ in 0..3 {
        let response = api
            .check(json!({"rule": "per-user", "key": "k", "cost": 0}))
            .await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.json()["remaining"], 15);
    }
}

#[tokio::test]
async fn the_leaky_bucket_tells_the_caller_how_long_to_hold_the_request() {
    let api = TestApi::spawn().await;
    let first = api
        .check(json!({"rule": "steady", "key": "k"}))
        .await
        .json();
    let second = api
        .check(json!({"rule": "steady", "key": "k"}))
        .await
        .json();
    assert_eq!(
        (first["delay_ms"].clone(), second["delay_ms"].clone()),
        (json!(0), json!(200))
    );
    let _ = &api.clock;
}

#[tokio::test]
async fn a_rule_in_shadow_mode_never_answers_429() {
    let api = TestApi::spawn().await;
    for _ in 0..5 {
        api.check(json!({"rule": "gateway-shadow", "key": "k"}))
            .await;
    }
    let response = api
        .check(json!({"rule": "gateway-shadow", "key": "k"}))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["shadow_rejected"], true);
    assert!(
        response.headers.get("ratelimit").is_none(),
        "shadow rules are not advertised"
    );
}

#[tokio::test]
async fn bad_requests_are_422_naming_the_field_and_spend_nothing() {
    let api = TestApi::spawn().await;
    let long_key = "k".repeat(257);
    for (body, field) in [
        (json!({"rule": "no-such-rule", "key": "k"}), "rule"),
        (json!({"rule": "bad name!", "key": "k"}), "rule"),
        (json!({"rule": "per-user", "key": ""}), "key"),
        (json!({"rule": "per-user", "key": long_key}), "key"),
        (json!({"rule": "per-user", "key": "tab\there"}), "key"),
        (
            json!({"rule": "per-user", "key": "k", "cost": "one"}),
            "cost",
        ),
        (json!({"rule": "per-user", "key": "k", "cost": -1}), "cost"),
        (json!({"rule": "per-user", "key": "k", "cost": 1.5}), "cost"),
        (json!({"rule": "per-user", "key": "k", "cost": 21}), "cost"),
        (json!({"key": "k"}), "rule"),
    ] {
        api.check(body.clone()).await.invalid_field(field);
    }
    let untouched = api
        .check(json!({"rule": "per-user", "key": "k", "cost": 0}))
        .await;
    assert_eq!(untouched.json()["remaining"], 20);
}

#[tokio::test]
async fn a_cost_beyond_capacity_is_a_permanent_error_not_a_retry() {
    let api = TestApi::spawn().await;
    let response = api
        .check(json!({"rule": "per-user", "key": "k", "cost": 21}))
        .await;
    let body = response.invalid_field("cost");
    assert!(
        body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("capacity is 20"),
        "{body}"
    );
    assert!(response.headers.get("retry-after").is_none());
}

#[tokio::test]
async fn the_rules_are_listed() {
    let api = TestApi::spawn().await;
    let response = send_to(
        &api.router,
        axum::http::Request::get("/api/v1/rules")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    let rules = response.json();
    let login = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "login")
        .unwrap();
    assert_eq!(
        login,
        &json!({"name": "login", "algorithm": "sliding_log", "limit": 5, "window_ms": 60000,
                "shadow": false, "on_failure": "closed", "timeout_ms": 100})
    );
    let _ = Arc::new(());
}
