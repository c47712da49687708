//! The pipeline end to end: intake to provider on every channel, with preferences applied.

use serde_json::json;

use crate::helpers::{TestApp, outcomes, statuses};

#[tokio::test]
async fn a_notification_reaches_every_channel_through_its_provider() {
    let app = TestApp::running().await;
    app.grace().await;

    let id = app
        .accepted(json!({"user_id": "grace", "template": "payment_receipt",
                         "data": {"amount": "12.50", "currency": "EUR", "payment_id": "pay_1"}}))
        .await;
    let record = app.wait_until_settled(&id).await;

    assert_eq!(
        statuses(&record).values().collect::<Vec<_>>(),
        ["delivered"; 4],
        "{record:#}"
    );
    for channel in ["email", "sms", "push", "webhook"] {
        assert_eq!(outcomes(&record, channel), ["delivered"]);
    }
    // Email: through SMTP to the mailbox, rendered.
    let mail = app.mailbox().messages();
    assert_eq!(mail.len(), 1);
    assert!(mail[0].subject.contains("12.50 EUR"), "{mail:?}");
    // SMS and push: one message per device, each with its own idempotency key.
    let keys = app.simulated_keys();
    assert_eq!(
        keys,
        [
            format!("{id}:push:0"),
            format!("{id}:push:1"),
            format!("{id}:sms")
        ]
    );
    // Webhook: signed, so the receiver could verify it, and keyed.
    let hooks = app.receiver.requests();
    assert_eq!(hooks.len(), 1);
    assert!(
        hooks[0].verified,
        "the receiver could not verify the signature"
    );
    assert_eq!(hooks[0].idempotency_key, format!("{id}:webhook"));
    assert_eq!(hooks[0].body["data"]["payment_id"], "pay_1");
}

#[tokio::test]
async fn an_opted_out_channel_gets_nothing_unless_the_notification_is_critical() {
    let app = TestApp::running().await;
    app.grace().await;
    app.put_user(
        "grace",
        json!({"email": "grace@example.com", "phone": "+14155550100",
               "preferences": {"sms": false}}),
    )
    .await;

    let normal = app
        .accepted(json!({"user_id": "grace", "template": "welcome", "data": {"name": "Grace"}}))
        .await;
    let critical = app
        .accepted(
            json!({"user_id": "grace", "template": "password_reset", "data": {"code": "123456"},
                         "priority": "critical"}),
        )
        .await;
    let normal = app.wait_until_settled(&normal).await;
    let critical = app.wait_until_settled(&critical).await;

    assert_eq!(statuses(&normal)["sms"], "skipped");
    assert_eq!(outcomes(&normal, "sms"), ["skipped"]);
    assert_eq!(statuses(&normal)["email"], "delivered");
    assert_eq!(statuses(&critical)["sms"], "delivered");
    let texts: Vec<_> = app
        .simulator()
        .messages()
        .into_iter()
        .map(|message| message.content["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), 1);
    assert!(texts[0].contains("123456"));
}

#[tokio::test]
async fn past_the_throttle_normal_notifications_are_dropped_and_critical_ones_still_sent() {
    let app = TestApp::running_with(|settings| settings.pipeline.throttle.limit = 2).await;
    app.put_user("ada", json!({"email": "ada@example.com"}))
        .await;

    let mut ids = Vec::new();
    for n in 0..3 {
        let id = app
            .accepted(json!({"user_id": "ada", "template": "welcome", "data": {"name": n}}))
            .await;
        // One at a time, so that which one is over the limit is known.
        app.wait_until_settled(&id).await;
        ids.push(id);
    }
    let critical = app
        .accepted(
            json!({"user_id": "ada", "template": "password_reset", "data": {"code": "9"},
                         "priority": "critical"}),
        )
        .await;

    let third = app.wait_until_settled(&ids[2]).await;
    assert_eq!(statuses(&third)["email"], "throttled");
    assert_eq!(outcomes(&third, "email"), ["throttled"]);
    let critical = app.wait_until_settled(&critical).await;
    assert_eq!(statuses(&critical)["email"], "delivered");
    assert_eq!(
        app.mailbox().messages().len(),
        3,
        "two normal, one critical"
    );
}

#[tokio::test]
async fn a_repeat_with_the_same_idempotency_key_is_delivered_once() {
    let app = TestApp::running().await;
    app.grace().await;
    let body = json!({"user_id": "grace", "template": "welcome", "data": {"name": "G"},
                      "channels": ["sms"], "idempotency_key": "signup-grace"});

    let first = app.accepted(body.clone()).await;
    let repeat = app.accepted(body).await;
    app.wait_until_settled(&first).await;

    assert_eq!(first, repeat);
    assert_eq!(app.simulator().messages().len(), 1);
}
