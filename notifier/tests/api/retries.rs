//! Retries through the retry topics, dead letters, and redrive.

use std::time::Duration;

use axum::http::StatusCode;
use notifier::providers::phone::simulator::Faults;
use serde_json::{Value, json};

use crate::helpers::{GUARD, TestApp, outcomes, statuses};

#[tokio::test]
async fn a_provider_failing_then_recovering_delivers_once_after_retries_with_every_attempt_recorded()
 {
    let app = TestApp::running().await;
    app.grace().await;
    app.simulator().set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });

    let id = app
        .accepted(
            json!({"user_id": "grace", "template": "welcome", "data": {"name": "G"},
                         "channels": ["sms"]}),
        )
        .await;
    app.wait_for(&id, "a failed attempt", |record| {
        outcomes(record, "sms").contains(&"retry".to_owned())
    })
    .await;
    app.simulator().set_faults(Faults::default());
    let record = app.wait_until_settled(&id).await;

    assert_eq!(statuses(&record)["sms"], "delivered");
    let outcomes = outcomes(&record, "sms");
    assert_eq!(outcomes.last().unwrap(), "delivered");
    assert!(
        outcomes[..outcomes.len() - 1].iter().all(|o| o == "retry"),
        "{outcomes:?}"
    );
    assert_eq!(app.simulator().messages().len(), 1);
}

#[tokio::test]
async fn a_rate_limited_attempt_waits_for_retry_after_and_then_delivers() {
    // Retry-After is honoured up to the longest retry delay, here 5 s.
    let app = TestApp::running_with(|settings| {
        settings.pipeline.retry_delays = vec![Duration::from_millis(100), Duration::from_secs(5)];
    })
    .await;
    app.grace().await;
    app.simulator().set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: 1,
        ..Faults::default()
    });

    let id = app
        .accepted(
            json!({"user_id": "grace", "template": "welcome", "data": {"name": "G"},
                         "channels": ["sms"]}),
        )
        .await;
    app.wait_for(&id, "a rate-limited attempt", |record| {
        outcomes(record, "sms").contains(&"retry".to_owned())
    })
    .await;
    app.simulator().set_faults(Faults::default());
    let record = app.wait_until_settled(&id).await;

    let attempts = record["deliveries"][0]["attempts"]
        .as_array()
        .unwrap()
        .clone();
    let at = |attempt: &Value| {
        time::OffsetDateTime::parse(
            attempt["at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    // The first retry delay is 100 ms; Retry-After said 1 s, and wins.
    let waited = at(attempts.last().unwrap()) - at(&attempts[0]);
    assert!(
        waited >= time::Duration::seconds(1),
        "retried after {waited}"
    );
    assert_eq!(statuses(&record)["sms"], "delivered");
}

#[tokio::test]
async fn retries_exhausted_end_in_the_dead_letters() {
    let app = TestApp::running().await;
    app.grace().await;
    app.simulator().set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });

    let id = app
        .accepted(
            json!({"user_id": "grace", "template": "welcome", "data": {"name": "G"},
                         "channels": ["sms"]}),
        )
        .await;
    let record = app.wait_until_settled(&id).await;

    assert_eq!(statuses(&record)["sms"], "dead");
    // The first attempt and one per retry topic (two in tests), then the dead letter.
    assert_eq!(outcomes(&record, "sms"), ["retry", "retry", "failed"]);
    assert!(app.simulator().messages().is_empty());
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_with_its_history_and_redrive_delivers_it_once() {
    let app = TestApp::running().await;
    app.grace().await;
    app.receiver.answer(400);

    let id = app
        .accepted(
            json!({"user_id": "grace", "template": "welcome", "data": {"name": "G"},
                         "channels": ["webhook"]}),
        )
        .await;
    let record = app.wait_until_settled(&id).await;

    // Permanent: no retry.
    assert_eq!(outcomes(&record, "webhook"), ["failed"]);
    let letters = app.get("/v1/dlq").await.json();
    let letter = letters["data"][0].clone();
    assert_eq!(letter["notification_id"], id.as_str());
    assert_eq!(letter["channel"], "webhook");
    assert!(
        letter["error"].as_str().unwrap().contains("400"),
        "{letter}"
    );
    // The dead-letter topic has it too, with the history.
    let dead = app
        .topics
        .subscribe(
            "test-reader",
            &[&format!("{}.dead", app.settings.pipeline.topic_prefix)],
        )
        .await
        .unwrap();
    let message = tokio::time::timeout(GUARD, dead.recv())
        .await
        .unwrap()
        .unwrap();
    let message: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(message["dead_letter"]["id"], letter["id"]);
    assert_eq!(message["history"][0]["outcome"], "failed");

    app.receiver.answer(200);
    let path = format!("/v1/dlq/{}/redrive", letter["id"].as_str().unwrap());
    let first = app.post(&path).await;
    let repeat = app.post(&path).await;
    let record = app
        .wait_for(&id, "the redriven delivery", |record| {
            statuses(record)["webhook"] == "delivered"
        })
        .await;

    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(repeat.status, StatusCode::OK);
    assert_eq!(repeat.json()["redriven_at"], first.json()["redriven_at"]);
    assert_eq!(outcomes(&record, "webhook"), ["failed", "delivered"]);
    assert_eq!(app.receiver.accepted(&format!("{id}:webhook")), 1);
}

#[tokio::test]
async fn redriving_an_unknown_dead_letter_is_404() {
    let app = TestApp::spawn().await;

    app.post("/v1/dlq/0193a1b2-c3d4-7e5f-a6b7-c8d9e0f1a2b3/redrive")
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_webhook_to_a_name_resolving_to_a_private_address_is_refused_for_good_without_a_request()
{
    let app = TestApp::running_with(|settings| settings.webhook_allow_private = false).await;
    // A name passes when stored (what it resolves to can change); the client refuses it when
    // sending, on the address it resolves to.
    let by_name = app.receiver.url().replace("127.0.0.1", "localhost");
    let response = app.put_user("grace", json!({"webhook_url": by_name})).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);

    let id = app
        .accepted(
            json!({"user_id": "grace", "template": "welcome", "data": {"name": "G"},
                         "channels": ["webhook"]}),
        )
        .await;
    let record = app.wait_until_settled(&id).await;

    assert_eq!(statuses(&record)["webhook"], "dead");
    assert!(app.receiver.requests().is_empty());
}
