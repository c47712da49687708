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

#[tokio::test]
async fn a_webhook_url_naming_an_internal_or_reserved_address_is_422_and_changes_nothing() {
    let app = TestApp::spawn_with(|settings| settings.webhook_allow_private = false).await;
    app.ada().await;
    let too_long = format!("https://hooks.example.com/{}", "a".repeat(2048));

    for url in [
        too_long.as_str(),
        "gopher://hooks.example.com/",
        "http://127.0.0.1:6379/",
        "http://0x7f000001/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://198.18.0.1/hook",
        "http://240.0.0.1/hook",
        "http://192.0.0.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::127.0.0.1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/hook",
        "http://[2002:a00:1::1]/hook",
        "http://[fd00::1]/hook",
    ] {
        app.put_user("ada", json!({"webhook_url": url}))
            .await
            .invalid_field("webhook_url");
    }

    assert_eq!(
        app.get("/v1/users/ada").await.json()["webhook_url"],
        "https://example.com/hooks"
    );
}

#[tokio::test]
async fn a_webhook_url_on_a_public_address_or_a_name_is_stored() {
    let app = TestApp::spawn_with(|settings| settings.webhook_allow_private = false).await;
    let longest = format!("https://hooks.example.com/{}", "a".repeat(2048 - 26));

    for url in [
        longest.as_str(),
        "http://93.184.216.34/hook",
        "https://[2606:4700::1111]/hook",
        // Judged when sent, on the addresses it resolves to then.
        "http://localhost:8080/hook",
    ] {
        let response = app.put_user("ada", json!({"webhook_url": url})).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{url}: {:?}",
            response.body
        );
    }
}

#[tokio::test]
async fn with_private_webhooks_allowed_a_loopback_receiver_can_be_stored() {
    let app = TestApp::spawn_with(|settings| settings.webhook_allow_private = true).await;

    let response = app
        .put_user("grace", json!({"webhook_url": app.receiver.url()}))
        .await;

    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
}
