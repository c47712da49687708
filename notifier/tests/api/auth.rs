//! Who may call the API: callers with a key, and no one else; and what a malformed id answers.

use axum::http::{Method, StatusCode};
use platform::auth::ApiKey;
use serde_json::json;

use crate::helpers::{TestApp, json_request};

/// Every route of the API, with a body where it takes one.
fn every_route() -> Vec<(Method, &'static str, String)> {
    let user = json!({"email": "mallory@example.com"}).to_string();
    let notification = json!({"user_id": "ada", "template": "welcome", "data": {"name": "A"}});
    vec![
        (Method::PUT, "/v1/users/ada", user),
        (Method::GET, "/v1/users/ada", String::new()),
        (Method::POST, "/v1/notifications", notification.to_string()),
        (
            Method::GET,
            "/v1/notifications/0190b3a4-7b5c-7d1e-8f00-000000000000",
            String::new(),
        ),
        (Method::GET, "/v1/dlq", String::new()),
        (
            Method::POST,
            "/v1/dlq/0190b3a4-7b5c-7d1e-8f00-000000000000/redrive",
            String::new(),
        ),
    ]
}

#[tokio::test]
async fn every_route_refuses_a_request_without_a_known_key_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.ada().await;
    let unknown = ApiKey::generate();

    for (method, path, body) in every_route() {
        for key in [None, Some(unknown.expose()), Some("not-a-key")] {
            let request = json_request(method.clone(), path, key, body.clone());

            let response = app.send_anonymous(request).await;

            response.problem(StatusCode::UNAUTHORIZED);
            assert!(
                response.header("www-authenticate").starts_with("Bearer"),
                "{method} {path} with {key:?}"
            );
        }
    }
    let ada = app.get("/v1/users/ada").await.json();
    assert_eq!(ada["email"], "ada@example.com", "the PUT changed nothing");
}

#[tokio::test]
async fn a_key_given_to_the_service_at_start_is_a_caller() {
    let key = ApiKey::generate();
    let app = TestApp::spawn_with(|settings| settings.caller_key = Some(key.clone())).await;

    let response = app
        .send_anonymous(json_request(
            Method::PUT,
            "/v1/users/ada",
            Some(key.expose()),
            json!({"email": "ada@example.com"}).to_string(),
        ))
        .await;

    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
}

#[tokio::test]
async fn a_malformed_id_in_the_path_is_a_400_naming_the_parameter() {
    let app = TestApp::spawn().await;

    for (method, path) in [
        (Method::GET, "/v1/notifications/not-a-uuid"),
        (Method::POST, "/v1/dlq/not-a-uuid/redrive"),
        (Method::GET, "/v1/users/a%20b"),
        (Method::PUT, "/v1/users/a%20b"),
        // Percent escapes that are not UTF-8: refused before any rule of ours reads them.
        (Method::GET, "/v1/notifications/%FF"),
        (Method::POST, "/v1/dlq/%FF/redrive"),
        (Method::GET, "/v1/users/%FF"),
        (Method::PUT, "/v1/users/%FF"),
    ] {
        let body = json!({"email": "ada@example.com"}).to_string();

        let response = app
            .send(json_request(method.clone(), path, None, body))
            .await;

        let problem = response.problem(StatusCode::BAD_REQUEST);
        assert_eq!(problem["errors"][0]["parameter"], "id", "{method} {path}");
    }
}
