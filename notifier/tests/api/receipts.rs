//! Receipts for the payments service's events, each event once.

use platform::topic::Message;
use serde_json::json;

use crate::helpers::{GUARD, TestApp};

fn payment_succeeded(event_id: &str, payment_id: &str, client_id: i64) -> Message {
    let payload = json!({
        "id": event_id,
        "type": "payment.succeeded",
        "client_id": client_id,
        "payment": {"id": payment_id, "amount": 1250, "currency": "EUR", "status": "succeeded"},
    });
    // Keyed by the payer here so that the three events share a partition and their order is
    // known; the payments service keys by payment id.
    Message::new("unused", client_id.to_string(), payload.to_string())
        .with_header("event_id", event_id)
        .with_header("event_type", "payment.succeeded")
}

#[tokio::test]
async fn a_payment_event_delivered_twice_sends_one_receipt() {
    let topic = platform::testing::unique_topic();
    let app = TestApp::running_with(|settings| {
        settings.pipeline.payments_topic = Some(topic.clone());
    })
    .await;
    // The payments service's client 42 is the notifier's user `client:42`.
    let client = 42;
    app.put_user(
        &format!("client:{client}"),
        json!({"email": "payer@example.com"}),
    )
    .await;

    let producer = app.topics.producer();
    for (event, payment) in [("evt-1", "pay_1"), ("evt-1", "pay_1"), ("evt-2", "pay_2")] {
        let mut message = payment_succeeded(event, payment, client);
        message.topic = topic.clone();
        producer.publish(message).await.unwrap();
    }

    // evt-2 comes after the repeat of evt-1 in the same partition: once its receipt is in, the
    // repeat has been handled.
    let deadline = tokio::time::Instant::now() + GUARD;
    let mail = loop {
        let mail = app.mailbox().messages();
        if mail.iter().any(|m| m.body.contains("pay_2")) {
            break mail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no receipt for pay_2: {mail:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(mail.len(), 2, "{mail:?}");
    assert!(
        mail.iter()
            .any(|m| m.body.contains("pay_1") && m.subject.contains("12.50 EUR"))
    );
}
