use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, json_request};

#[tokio::test]
async fn a_new_key_is_shown_once_with_its_name() {
    let app = TestApp::spawn().await;

    let response = app
        .post_json("/api/v1/keys", None, json!({ "name": "marketing" }))
        .await;

    assert_eq!(response.status, StatusCode::CREATED);
    let body = response.json();
    assert!(body["key"].as_str().unwrap().starts_with("sk_"));
    assert_eq!(body["name"], "marketing");
    assert!(body["created_at"].is_string());
}

#[tokio::test]
async fn a_key_needs_a_name() {
    let app = TestApp::spawn().await;

    app.post_json("/api/v1/keys", None, json!({ "name": "  " }))
        .await
        .invalid_field("name");
    app.post_json("/api/v1/keys", None, json!({}))
        .await
        .invalid_field("name");
}

/// The 100 characters are counted as sent, spaces included, as the OpenAPI document's
/// `maxLength` says; the spaces around a name are then trimmed.
#[tokio::test]
async fn a_key_name_is_at_most_100_characters_as_sent() {
    let app = TestApp::spawn().await;

    let padded = format!(" {} ", "n".repeat(99));
    app.post_json("/api/v1/keys", None, json!({ "name": padded }))
        .await
        .invalid_field("name");
    let created = app
        .post_json(
            "/api/v1/keys",
            None,
            json!({ "name": format!(" {}", "n".repeat(99)) }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.json()["name"], "n".repeat(99));
}

#[tokio::test]
async fn a_key_request_that_is_not_json_is_refused() {
    let app = TestApp::spawn().await;

    let response = app
        .send(json_request(
            Method::POST,
            "/api/v1/keys",
            None,
            "{name:".into(),
        ))
        .await;

    response.problem(StatusCode::BAD_REQUEST);
}
