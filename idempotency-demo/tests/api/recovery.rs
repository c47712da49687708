//! Crashes between phases, and a provider that fails, times out or crashes after charging: in
//! every case one charge, and the payment finishes.

use std::time::Duration;

use axum::http::StatusCode;
use idempotency_demo::{
    domain::{IdempotencyKey, PaymentRequest},
    http::payments::CreatePayment,
    provider::Faults,
};

use crate::helpers::{Phase, TestApp, visa};

const PHASES: [Phase; 3] = [Phase::Begin, Phase::CreatePayment, Phase::Finish];

/// The request `app.pay(_, visa(amount))` sends, as the service receives it.
fn request(amount: u64) -> PaymentRequest {
    let body: CreatePayment = serde_json::from_value(visa(amount)).unwrap();
    body.parse().unwrap()
}

/// Runs the first attempt of `key` in a process that dies right after `phase` commits.
async fn crash_after(app: &TestApp, phase: Phase, key: &str) {
    let (crashing, store) = app.crashing_instance(phase);
    let client = app.client_id().await;
    let key = IdempotencyKey::parse(key.as_bytes()).unwrap();

    let attempt = crashing.create(client, &key, request(2000)).await;

    assert!(attempt.is_err(), "the process died after {phase:?}");
    assert_eq!(store.seen.lock().unwrap().last(), Some(&phase));
}

#[tokio::test]
async fn a_crash_after_any_phase_is_finished_by_a_retry_with_one_charge() {
    let app = TestApp::spawn().await;
    for phase in PHASES {
        let key = format!("crash-{phase:?}");
        crash_after(&app, phase, &key).await;

        let retry = app.pay(&key, visa(2000)).await;
        if phase != Phase::Finish {
            // The dead process still holds the key until its lock goes stale.
            let problem = retry.problem(StatusCode::CONFLICT);
            assert_eq!(problem["type"], "tag:sdlab.dev,2026:request-in-progress");
            assert!(retry.headers.contains_key("retry-after"));
            app.clock.advance(Duration::from_secs(61));
        }
        let finished = app.pay(&key, visa(2000)).await;

        assert_eq!(finished.status, StatusCode::CREATED, "{phase:?}");
        assert_eq!(finished.json()["status"], "succeeded");
    }
    assert_eq!(app.charges().len(), PHASES.len());
    assert_eq!(app.all_payments().await.len(), PHASES.len());
    assert_eq!(app.unpublished_events().await.len(), PHASES.len());
}

#[tokio::test]
async fn a_crash_after_any_phase_is_finished_by_the_completer_with_one_charge() {
    let app = TestApp::spawn().await;
    for phase in PHASES {
        crash_after(&app, phase, &format!("abandoned-{phase:?}")).await;
    }

    // Within the grace period the completer leaves the keys to their clients.
    assert_eq!(app.payments().complete_abandoned().await.unwrap(), 0);
    app.clock.advance(Duration::from_secs(61));
    let completed = app.payments().complete_abandoned().await.unwrap();

    // The key that crashed after `finish` was already finished.
    assert_eq!(completed, PHASES.len() - 1);
    assert_eq!(app.charges().len(), PHASES.len());
    for phase in PHASES {
        let replay = app.pay(&format!("abandoned-{phase:?}"), visa(2000)).await;
        assert_eq!(replay.status, StatusCode::CREATED, "{phase:?}");
        assert_eq!(replay.header("idempotent-replayed"), "true");
    }
    assert_eq!(app.charges().len(), PHASES.len());
    assert_eq!(app.unpublished_events().await.len(), PHASES.len());
}

#[tokio::test]
async fn our_own_failure_is_a_500_that_is_not_stored_and_the_retry_resumes_at_once() {
    // Our choice for our own 5xx: the key is unlocked where it stands, not stored, so the retry
    // finishes the payment without waiting for the lock to go stale.
    let app = TestApp::spawn().await;
    for phase in [Phase::CreatePayment, Phase::Finish] {
        let key = format!("flaky-{phase:?}");
        let flaky = app.flaky_instance(phase);
        let client = app.client_id().await;
        let parsed = IdempotencyKey::parse(key.as_bytes()).unwrap();

        let failed = flaky
            .create(client, &parsed, request(2000))
            .await
            .unwrap_err();
        let retry = app.pay(&key, visa(2000)).await;

        assert_eq!(
            failed.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{phase:?}"
        );
        assert_eq!(retry.status, StatusCode::CREATED, "{phase:?}");
        assert!(retry.headers.get("idempotent-replayed").is_none());
    }
    assert_eq!(app.charges().len(), 2);
    assert_eq!(app.all_payments().await.len(), 2);
}

#[tokio::test]
async fn a_provider_that_crashes_after_charging_is_not_charged_again_by_the_retry() {
    let app = TestApp::spawn().await;
    app.set_faults(Faults {
        crash_after_charge_rate: 1.0,
        ..Faults::default()
    });

    let first = app.pay("order-1", visa(2000)).await;
    let problem = first.problem(StatusCode::BAD_GATEWAY);
    assert_eq!(problem["type"], "tag:sdlab.dev,2026:provider-unavailable");
    assert!(first.headers.contains_key("retry-after"));
    assert_eq!(app.all_payments().await[0]["status"], "pending");
    app.set_faults(Faults::default());
    let retry = app.pay("order-1", visa(2000)).await;

    assert_eq!(retry.status, StatusCode::CREATED);
    assert!(retry.headers.get("idempotent-replayed").is_none());
    assert_eq!(app.charges().len(), 1);
    assert_eq!(retry.json()["provider_reference"], app.charges()[0].id);
}

#[tokio::test]
async fn a_provider_timeout_after_charging_is_not_charged_again_by_the_retry() {
    // The test settings give the provider 500 ms; it answers after 1.5 s, having charged.
    let app = TestApp::spawn().await;
    app.set_faults(Faults {
        latency_ms: 1500,
        ..Faults::default()
    });

    let first = app.pay("order-1", visa(2000)).await;
    first.problem(StatusCode::BAD_GATEWAY);
    assert_eq!(app.charges().len(), 1);
    app.set_faults(Faults::default());
    let retry = app.pay("order-1", visa(2000)).await;

    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(app.charges().len(), 1);
}

#[tokio::test]
async fn provider_errors_are_not_stored_the_key_is_unlocked_and_the_retry_finishes() {
    // Our choice for a 5xx (documented in DESIGN.md): unlike Stripe, which stores and replays
    // it, the key is unlocked where it stands and the retry resumes the payment.
    let app = TestApp::spawn().await;
    app.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });

    let first = app.pay("order-1", visa(2000)).await;
    let second = app.pay("order-1", visa(2000)).await;
    app.set_faults(Faults::default());
    let third = app.pay("order-1", visa(2000)).await;

    first.problem(StatusCode::BAD_GATEWAY);
    second.problem(StatusCode::BAD_GATEWAY);
    assert!(second.headers.get("idempotent-replayed").is_none());
    assert_eq!(third.status, StatusCode::CREATED);
    assert_eq!(app.charges().len(), 1);
    assert_eq!(app.all_payments().await.len(), 1);
}

#[tokio::test]
async fn a_retry_while_the_first_is_in_flight_is_409_and_later_gets_the_real_result() {
    let app =
        TestApp::spawn_with(|settings| settings.provider_timeout = Duration::from_secs(10)).await;
    app.set_faults(Faults {
        latency_ms: 2000,
        ..Faults::default()
    });
    let router = app.router.clone();
    let key = app.key.clone();
    let first = tokio::spawn(async move {
        crate::helpers::send_to(
            &router,
            crate::helpers::payment_request(&key, Some("order-1"), visa(2000).to_string()),
        )
        .await
    });
    // The provider has charged and is holding its answer: the first request holds the key.
    while app.charges().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let during = app.pay("order-1", visa(2000)).await;
    let first = first.await.unwrap();
    let after = app.pay("order-1", visa(2000)).await;

    let problem = during.problem(StatusCode::CONFLICT);
    assert_eq!(problem["type"], "tag:sdlab.dev,2026:request-in-progress");
    assert_eq!(during.header("retry-after"), "1");
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(after.body, first.body);
    assert_eq!(after.header("idempotent-replayed"), "true");
    assert_eq!(app.charges().len(), 1);
}
