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
    /// The operator's key (`Settings::for_tests`), granted every rule of the decision API.
    key: String,
}

impl TestApi {
    async fn spawn() -> Self {
        Self::with_rules(rules::DEFAULT_RULES).await
    }

    async fn with_rules(text: &str) -> Self {
        let clock = clock();
        let store = store_with_clock(&clock).await;
        let rules = rules::parse(text, rules::Format::Toml, "rules.toml").unwrap();
        let settings = Settings::for_tests();
        let key = settings.caller_key.as_ref().unwrap().expose().to_owned();
        let app = Application::build_with(settings, rules, store, "test".into())
            .await
            .unwrap();
        Self {
            router: app.router(),
            clock,
            key,
        }
    }

    async fn check(&self, body: Value) -> TestResponse {
        self.check_as(Some(&self.key), body).await
    }

    async fn check_as(&self, key: Option<&str>, body: Value) -> TestResponse {
        send_to(
            &self.router,
            json_request(Method::POST, "/api/v1/check", key, body.to_string()),
        )
        .await
    }

    async fn rules_as(&self, key: Option<&str>) -> TestResponse {
        let mut request = axum::http::Request::get("/api/v1/rules");
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        send_to(
            &self.router,
            request.body(axum::body::Body::empty()).unwrap(),
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
    let candidate = "[rules.candidate]\nalgorithm = \"fixed_window\"\nlimit = 5\nwindow = \"10s\"\nshadow = true\n";
    let api = TestApi::with_rules(&format!("{}\n{candidate}", rules::DEFAULT_RULES)).await;
    for _ in 0..5 {
        api.check(json!({"rule": "candidate", "key": "k"})).await;
    }
    let response = api.check(json!({"rule": "candidate", "key": "k"})).await;
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
    let response = api.rules_as(Some(&api.key)).await;
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

/// The rules file with a caller granted `login` alone, and the caller's key.
fn with_a_login_caller() -> (String, String) {
    let key = platform::auth::ApiKey::generate();
    let text = format!(
        "{}\n[callers.checkout]\nkey_sha256 = \"{}\"\nrules = [\"login\"]\n",
        rules::DEFAULT_RULES,
        key.hash()
    );
    (text, key.expose().to_owned())
}

#[tokio::test]
async fn a_request_without_a_known_key_is_refused_and_spends_nothing() {
    let api = TestApi::spawn().await;
    let unknown = platform::auth::ApiKey::generate();
    let spend = json!({"rule": "per-user", "key": "user:42", "cost": 20});

    for key in [None, Some(unknown.expose()), Some("not-a-key")] {
        let refused = api.check_as(key, spend.clone()).await;
        refused.problem(StatusCode::UNAUTHORIZED);
        assert!(refused.header("www-authenticate").starts_with("Bearer"));
        api.rules_as(key).await.problem(StatusCode::UNAUTHORIZED);
    }
    let after = api
        .check(json!({"rule": "per-user", "key": "user:42", "cost": 0}))
        .await;
    assert_eq!(after.json()["remaining"], 20, "nothing was spent");
}

#[tokio::test]
async fn no_caller_may_spend_a_budget_the_gateway_counts() {
    let api = TestApi::spawn().await;

    let response = api
        .check(json!({"rule": "gateway-ip", "key": "ip:127.0.0.2", "cost": 39}))
        .await;

    response.invalid_field("rule");
    let listed = api.rules_as(Some(&api.key)).await.json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().all(|name| !name.starts_with("gateway-")),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_caller_checks_and_sees_only_the_rules_it_is_granted() {
    let (text, key) = with_a_login_caller();
    let api = TestApi::with_rules(&text).await;

    let granted = api
        .check_as(Some(&key), json!({"rule": "login", "key": "user:1"}))
        .await;
    let other = api
        .check_as(Some(&key), json!({"rule": "per-user", "key": "user:1"}))
        .await;
    let listed = api.rules_as(Some(&key)).await.json();

    assert_eq!(granted.status, StatusCode::OK);
    let problem = other.problem(StatusCode::FORBIDDEN);
    assert!(
        problem["detail"].as_str().unwrap().contains("`login`"),
        "{problem}"
    );
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["login"]);
}
