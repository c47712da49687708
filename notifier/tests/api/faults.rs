//! The notifier's own fault switches, flipped over HTTP as the console flips them: the broker
//! and the database go away, intake and the pipeline cope, and after the undo every notification
//! accepted is delivered, exactly once.

use std::time::Duration;

use axum::http::StatusCode;
use notifier::{messages::Topology, providers::phone::simulator::Faults};
use serde_json::{Value, json};

use crate::helpers::{GUARD, TestApp, TestResponse, metric, outcomes, statuses};

fn sms(n: usize) -> Value {
    json!({"user_id": "grace", "template": "welcome", "data": {"name": n}, "channels": ["sms"]})
}

fn database_unavailable(response: &TestResponse) {
    let problem = response.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["type"], "tag:sdlab.dev,2026:database-unavailable");
    assert_eq!(response.header("retry-after"), "1");
}

/// Polls `done` every 25 ms until it holds; fails after [`GUARD`].
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + GUARD;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {GUARD:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every notification of `ids` delivered by SMS, recorded once, and one message each at the
/// provider.
async fn delivered_once_each(app: &TestApp, ids: &[String]) {
    for id in ids {
        let record = app.wait_until_settled(id).await;
        assert_eq!(statuses(&record)["sms"], "delivered", "{record:#}");
        assert_eq!(outcomes(&record, "sms"), ["delivered"], "recorded once");
    }
    let mut keys = app.simulated_keys();
    let total = keys.len();
    keys.dedup();
    assert_eq!(total, ids.len(), "one message per notification");
    assert_eq!(keys.len(), total, "a phone got a notification twice");
}

#[tokio::test]
async fn while_the_broker_is_unreachable_intake_goes_on_and_after_the_undo_each_is_delivered_once()
{
    let app = TestApp::running().await;
    app.grace().await;
    let relay = app.app.relay();

    app.switch("broker", true).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(app.accepted(sms(n)).await);
    }
    let refused = relay.relay_once().await;
    let waiting = relay.backlog().await.unwrap();
    let mut routed_while_down = Vec::new();
    for id in &ids {
        let record = app.get(&format!("/v1/notifications/{id}")).await.json();
        routed_while_down.push(statuses(&record)["sms"].clone());
    }
    let sent_while_down = app.simulator().messages().len();
    app.switch("broker", false).await;

    assert!(refused.is_err());
    assert_eq!(
        waiting.pending, 5,
        "each accepted notification waits in the outbox"
    );
    assert!(routed_while_down.iter().all(|status| status == "pending"));
    assert_eq!(sent_while_down, 0);
    delivered_once_each(&app, &ids).await;
    assert_eq!(relay.backlog().await.unwrap().pending, 0);
    // The router's group reports its lag on the intake topic, and has caught up.
    let topology = Topology::new(&app.settings.pipeline.topic_prefix);
    let router_lag = [
        format!(r#"group="{}""#, topology.group("router")),
        format!(r#"topic="{}""#, topology.intake()),
    ];
    let labels: Vec<&str> = router_lag.iter().map(String::as_str).collect();
    eventually("the router's lag to be reported as 0", || {
        metric("topic_consumer_lag", &labels) == Some(0.0)
    })
    .await;
}

#[tokio::test]
async fn while_the_database_is_unreachable_intake_answers_503_and_what_was_accepted_waits() {
    let mut app = TestApp::spawn().await;
    app.grace().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(app.accepted(sms(n)).await);
    }

    app.switch("database", true).await;
    app.start().await;
    let refused = app.notify(sms(99)).await;
    let read = app.get(&format!("/v1/notifications/{}", ids[0])).await;
    let ready = app.get("/readyz").await;
    let relayed = app.app.relay().relay_once().await;
    let sent_while_down = app.simulator().messages().len();
    app.switch("database", false).await;

    database_unavailable(&refused);
    database_unavailable(&read);
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        relayed.is_err(),
        "the relay reads the outbox from the same database"
    );
    assert_eq!(sent_while_down, 0);
    delivered_once_each(&app, &ids).await;
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_delivery_whose_outcome_cannot_be_recorded_is_recorded_once_after_the_undo() {
    let app =
        TestApp::running_with(|settings| settings.provider_timeout = Duration::from_secs(10)).await;
    app.grace().await;
    // The provider delivers, then takes a second to answer: the database goes away meanwhile.
    app.simulator().set_faults(Faults {
        latency_ms: 1000,
        ..Faults::default()
    });
    let id = app.accepted(sms(1)).await;
    eventually("the provider to deliver", || {
        !app.simulator().messages().is_empty()
    })
    .await;
    let failed = || metric("topic_handler_errors_total", &[r#"consumer="worker.sms""#]);
    let failed_before = failed().unwrap_or(0.0);

    app.switch("database", true).await;
    // Held off until the worker has failed to record the outcome (no other test of this binary
    // breaks an SMS worker's database).
    eventually("the worker to fail to record the attempt", || {
        failed().unwrap_or(0.0) > failed_before
    })
    .await;
    app.simulator().set_faults(Faults::default());
    app.switch("database", false).await;

    delivered_once_each(&app, std::slice::from_ref(&id)).await;
    // The batch was tried again after the undo: its provider call was answered from the key, not
    // delivered a second time.
    assert_eq!(app.simulator().messages()[0].repeats, 1);
}
