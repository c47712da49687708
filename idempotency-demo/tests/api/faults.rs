//! The service's own fault switches, flipped over HTTP as the console flips them: the database
//! and the broker go away, the service copes, and after the undo nothing is lost and nothing is
//! charged or published twice.

use std::{collections::HashSet, time::Duration};

use axum::http::StatusCode;
use idempotency_demo::provider::Faults;
use platform::outbox::{Backlog, EVENT_ID_HEADER};
use serde_json::Value;

use crate::helpers::{TestApp, counter, payment_request, send_to, visa};

/// A guard against a hang, not a timing assertion.
const GUARD: Duration = Duration::from_secs(60);

fn database_unavailable(response: &crate::helpers::TestResponse) {
    let problem = response.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["type"], "tag:sdlab.dev,2026:database-unavailable");
    assert_eq!(response.header("retry-after"), "1");
}

#[tokio::test]
async fn while_the_database_is_unreachable_requests_get_503_and_nothing_is_charged() {
    let app = TestApp::spawn().await;
    let refused_before = counter(
        "payments_requests_total",
        &[r#"outcome="database_unavailable""#],
    );

    app.switch("database", true).await;
    let payment = app.pay("order-1", visa(2000)).await;
    let list = app.get("/v1/payments").await;
    let ready = app.get("/readyz").await;
    app.switch("database", false).await;

    database_unavailable(&payment);
    database_unavailable(&list);
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(app.charges().is_empty(), "nothing reached the provider");
    assert!(
        counter(
            "payments_requests_total",
            &[r#"outcome="database_unavailable""#]
        ) > refused_before
    );
    // Undone: the same key is a new payment, charged once.
    let retry = app.pay("order-1", visa(2000)).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert!(!retry.headers.contains_key("idempotent-replayed"));
    assert_eq!(app.charges().len(), 1);
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_payment_cut_off_from_the_database_after_its_charge_is_finished_by_the_completer_once() {
    let app =
        TestApp::spawn_with(|settings| settings.provider_timeout = Duration::from_secs(10)).await;
    // The provider charges, then takes a second to answer: the database goes away meanwhile.
    app.set_faults(Faults {
        latency_ms: 1000,
        ..Faults::default()
    });
    let (router, request) = (
        app.router.clone(),
        payment_request(&app.key, Some("order-1"), visa(2000).to_string()),
    );
    let in_flight = tokio::spawn(async move { send_to(&router, request).await });
    let deadline = tokio::time::Instant::now() + GUARD;
    while app.charges().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no charge was made");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    app.switch("database", true).await;
    let cut_off = in_flight.await.unwrap();
    let retry = app.pay("order-1", visa(2000)).await;
    // Past the grace period, and past the lock the cut-off request could not give back.
    app.clock.advance(Duration::from_secs(61));
    let completer_while_down = app.payments().complete_abandoned().await;
    let recovered_before = counter("payments_recoveries_total", &[]);

    app.set_faults(Faults::default());
    app.switch("database", false).await;
    let completed = app.payments().complete_abandoned().await.unwrap();

    database_unavailable(&cut_off);
    database_unavailable(&retry);
    assert!(completer_while_down.is_err());
    assert_eq!(completed, 1);
    assert!(counter("payments_recoveries_total", &[]) > recovered_before);
    assert_eq!(
        app.charges().len(),
        1,
        "the completer's charge was a replay"
    );
    let replay = app.pay("order-1", visa(2000)).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.header("idempotent-replayed"), "true");
    let payments = app.all_payments().await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "succeeded");
    assert_eq!(payments[0]["id"], replay.json()["id"]);
    assert_eq!(app.unpublished_events().await.len(), 1);
}

#[tokio::test]
async fn while_the_broker_is_unreachable_payments_go_on_and_their_events_wait_then_go_out_once() {
    let app = TestApp::spawn().await;
    let relay = app.app.relay();

    app.switch("broker", true).await;
    let mut paid = Vec::new();
    for i in 0..5 {
        let response = app.pay(&format!("order-{i}"), visa(100 + i)).await;
        assert_eq!(response.status, StatusCode::CREATED);
        paid.push(response.json()["id"].as_str().unwrap().to_owned());
    }
    let refused = relay.relay_once().await;
    app.clock.advance(Duration::from_secs(30));
    let waiting = relay.backlog().await.unwrap();
    app.switch("broker", false).await;
    let published = relay.relay_once().await.unwrap();
    let drained = relay.backlog().await.unwrap();

    assert!(refused.is_err());
    assert_eq!(
        waiting,
        Backlog {
            pending: 5,
            oldest: Duration::from_secs(30)
        }
    );
    assert_eq!(published, 5, "released at once, not left to a lease");
    assert_eq!(drained.pending, 0);
    let (consumer, deliveries) = app.consume(5).await;
    let events: HashSet<_> = deliveries
        .iter()
        .map(|d| d.header(EVENT_ID_HEADER).unwrap().to_vec())
        .collect();
    let payments: HashSet<_> = deliveries
        .iter()
        .map(|d| {
            let payload: Value = serde_json::from_slice(&d.payload).unwrap();
            payload["payment"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(events.len(), 5);
    assert_eq!(payments, paid.into_iter().collect());
    // Nothing else on the topic: once these are committed, the group is behind by nothing.
    consumer.commit_batch(&deliveries).await.unwrap();
    let lag = consumer.lag().await.unwrap();
    assert_eq!(lag[0].records, 0, "{lag:?}");
}
