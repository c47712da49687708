//! Contacts and preferences.

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn a_user_is_stored_with_contacts_and_opt_outs_and_replaced_whole() {
    let app = TestApp::spawn().await;
    app.ada().await;

    let stored = app.get("/v1/users/ada").await.json();
    let replaced = app
        .put_user("ada", json!({"email": "new@example.com"}))
        .await;
    let after = app.get("/v1/users/ada").await.json();

    assert_eq!(stored["phone"], "+442071838750");
    assert_eq!(stored["opted_out"], json!(["sms"]));
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(after["email"], "new@example.com");
    assert!(after["phone"].is_null());
    assert_eq!(after["opted_out"], json!([]));
}

#[tokio::test]
async fn bad_contacts_and_preferences_are_422_naming_the_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.ada().await;

    for (body, field) in [
        (json!({"email": "not-an-address"}), "email"),
        (json!({"phone": "12345"}), "phone"),
        (json!({"webhook_url": "file:///etc/passwd"}), "webhook_url"),
        (
            json!({"preferences": {"carrier_pigeon": true}}),
            "preferences/carrier_pigeon",
        ),
        (json!({"push_tokens": [""]}), "push_tokens/0"),
    ] {
        app.put_user("ada", body).await.invalid_field(field);
    }

    assert_eq!(
        app.get("/v1/users/ada").await.json()["email"],
        "ada@example.com"
    );
}

#[tokio::test]
async fn an_unknown_user_is_404_and_a_malformed_id_is_refused() {
    let app = TestApp::spawn().await;

    app.get("/v1/users/nobody")
        .await
        .problem(StatusCode::NOT_FOUND);
    app.put_user("bad%20id", json!({}))
        .await
        .problem(StatusCode::BAD_REQUEST);
}
