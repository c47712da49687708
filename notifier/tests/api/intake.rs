//! Intake: validation, durability before the 202, idempotency keys.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use futures::future::join_all;
use serde_json::json;

use crate::helpers::{TestApp, outcomes};

#[tokio::test]
async fn a_notification_is_stored_before_the_202_with_a_pending_delivery_per_channel() {
    let app = TestApp::spawn().await;
    app.ada().await;

    let accepted = app
        .notify(json!({"user_id": "ada", "template": "welcome", "data": {"name": "Ada"}}))
        .await;

    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    assert_eq!(accepted.json()["status"], "accepted");
    let id = accepted.json()["id"].as_str().unwrap().to_owned();
    let stored = app.get(&format!("/v1/notifications/{id}")).await.json();
    let channels: Vec<_> = stored["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["channel"].as_str().unwrap().to_owned(),
                d["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Every reachable channel: preferences are applied by the router, not at intake.
    assert_eq!(
        channels,
        [
            ("email", "pending"),
            ("sms", "pending"),
            ("push", "pending"),
            ("webhook", "pending")
        ]
        .map(|(c, s)| (c.to_owned(), s.to_owned()))
    );
    assert_eq!(stored["template"], "welcome");
}

#[tokio::test]
async fn a_repeat_with_the_same_idempotency_key_returns_the_first_notification() {
    let app = TestApp::spawn().await;
    app.ada().await;
    let body = json!({"user_id": "ada", "template": "welcome", "data": {"name": "Ada"},
                      "channels": ["email"], "idempotency_key": "signup-ada"});

    let first = app.notify(body.clone()).await;
    let repeat = app.notify(body).await;

    assert_eq!(repeat.status, StatusCode::ACCEPTED);
    assert_eq!(repeat.json()["id"], first.json()["id"]);
}

/// Intake commits the requests waiting at once in one group (`store/intake.rs`), so repeats sent
/// together land in one group: the first of them is the notification, the others repeats, and
/// the notifications sent beside them are unaffected.
#[tokio::test]
async fn repeats_sent_at_once_make_one_notification_and_one_delivery() {
    let app = TestApp::running_with(|settings| settings.pipeline.throttle.limit = 1000).await;
    app.grace().await;
    let body = |n: usize| {
        let key = if n.is_multiple_of(2) {
            "checkout".to_owned()
        } else {
            format!("order-{n}")
        };
        json!({"user_id": "grace", "template": "welcome", "data": {"name": "Grace"},
               "channels": ["push"], "idempotency_key": key})
    };

    let responses = join_all((0..40).map(|n| app.notify(body(n)))).await;

    let mut ids = Vec::new();
    for response in &responses {
        assert_eq!(response.status, StatusCode::ACCEPTED, "{:?}", response.body);
        ids.push(response.json()["id"].as_str().unwrap().to_owned());
    }
    let repeated: BTreeSet<_> = ids.iter().step_by(2).collect();
    assert_eq!(
        repeated.len(),
        1,
        "one notification for the key sent 20 times"
    );
    let distinct: BTreeSet<_> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        21,
        "the 20 other keys are 20 other notifications"
    );
    for id in &distinct {
        let record = app.wait_until_settled(id).await;
        assert_eq!(outcomes(&record, "push"), ["delivered"]);
    }
    let mut keys = app.simulated_keys();
    let total = keys.len();
    keys.dedup();
    assert_eq!(total, 42, "two devices for each of 21 notifications");
    assert_eq!(keys.len(), total, "a device got a notification twice");
}

/// Intake also reads the users of the requests waiting at once in one statement
/// (`store/intake.rs`): each request is still checked against its own user, whether that user is
/// asked for once in the group, several times, or not known at all.
#[tokio::test]
async fn requests_sent_at_once_are_each_checked_against_their_own_user() {
    let app = TestApp::spawn().await;
    for n in 0..5 {
        app.put_user(&format!("phone-{n}"), json!({"phone": "+442071838750"}))
            .await;
        app.put_user(&format!("email-{n}"), json!({"email": "e@example.com"}))
            .await;
    }
    let users: Vec<String> = (0..45)
        .map(|n| {
            let kind = ["phone", "email", "ghost"][n % 3];
            format!("{kind}-{}", n % 5)
        })
        .collect();

    let responses = join_all(users.iter().map(|user| {
        app.notify(
            json!({"user_id": user, "template": "welcome", "data": {"name": "x"},
                          "channels": ["sms"]}),
        )
    }))
    .await;

    for (user, response) in users.iter().zip(&responses) {
        match &user[..5] {
            "phone" => {
                assert_eq!(
                    response.status,
                    StatusCode::ACCEPTED,
                    "{user}: {:?}",
                    response.body
                );
                let id = response.json()["id"].as_str().unwrap().to_owned();
                let stored = app.get(&format!("/v1/notifications/{id}")).await.json();
                assert_eq!(stored["user_id"], user.as_str());
            }
            "email" => {
                response.invalid_field("channels/0");
            }
            _ => {
                response.invalid_field("user_id");
            }
        }
    }
}

#[tokio::test]
async fn unknown_templates_users_missing_data_and_bad_channels_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    app.ada().await;
    app.put_user("mute", json!({})).await;

    for (body, field) in [
        (
            json!({"user_id": "ada", "template": "nope", "data": {}}),
            "template",
        ),
        (
            json!({"user_id": "ghost", "template": "welcome", "data": {"name": "x"}}),
            "user_id",
        ),
        (
            json!({"user_id": "ada", "template": "payment_receipt", "data": {"amount": 5, "currency": "USD"}}),
            "data/payment_id",
        ),
        (
            json!({"user_id": "ada", "template": "welcome", "data": {"name": "x"}, "channels": ["email", "fax"]}),
            "channels/1",
        ),
        (
            json!({"user_id": "mute", "template": "welcome", "data": {"name": "x"}}),
            "channels",
        ),
        (
            json!({"user_id": "ada", "template": "welcome", "data": {"name": "x"}, "priority": "urgent"}),
            "priority",
        ),
        (
            json!({"user_id": "ada", "template": "welcome", "data": {"name": "x"}, "idempotency_key": ""}),
            "idempotency_key",
        ),
    ] {
        app.notify(body.clone()).await.invalid_field(field);
    }
}

#[tokio::test]
async fn a_channel_the_user_cannot_be_reached_on_is_422() {
    let app = TestApp::spawn().await;
    app.put_user("emailonly", json!({"email": "e@example.com"}))
        .await;

    let response = app
        .notify(
            json!({"user_id": "emailonly", "template": "welcome", "data": {"name": "E"},
                       "channels": ["sms"]}),
        )
        .await;

    let problem = response.invalid_field("channels/0");
    assert!(
        problem["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("sms")
    );
}

#[tokio::test]
async fn an_unknown_notification_is_404() {
    let app = TestApp::spawn().await;

    app.get("/v1/notifications/0193a1b2-c3d4-7e5f-a6b7-c8d9e0f1a2b3")
        .await
        .problem(StatusCode::NOT_FOUND);
}
