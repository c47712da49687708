//! The Idempotency-Key contract: replays, mismatches, scoping, what is stored, expiry.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, visa};

#[tokio::test]
async fn a_first_payment_is_charged_once_and_answered_201() {
    let app = TestApp::spawn().await;

    let response = app.pay("order-1", visa(2000)).await;

    assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
    assert!(response.headers.get("idempotent-replayed").is_none());
    let payment = response.json();
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["amount"], 2000);
    assert_eq!(payment["currency"], "USD");
    assert!(payment["id"].as_str().unwrap().starts_with("pay_"));
    let charges = app.charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(payment["provider_reference"], charges[0].id);
}

#[tokio::test]
async fn a_retry_after_success_replays_the_answer_byte_for_byte_and_charges_nothing() {
    let app = TestApp::spawn().await;
    let first = app.pay("order-1", visa(2000)).await;

    let retry = app.pay("order-1", visa(2000)).await;

    assert_eq!(retry.status, first.status);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("idempotent-replayed"), "true");
    assert_eq!(retry.header("content-type"), "application/json");
    assert_eq!(app.charges().len(), 1);
    assert_eq!(app.all_payments().await.len(), 1);
}

#[tokio::test]
async fn the_quoted_structured_field_form_is_the_same_key_as_the_bare_one() {
    let app = TestApp::spawn().await;
    let bare = app.pay("order-7", visa(500)).await;

    let quoted = app.pay("\"order-7\"", visa(500)).await;

    assert_eq!(quoted.header("idempotent-replayed"), "true");
    assert_eq!(quoted.body, bare.body);
    assert_eq!(app.charges().len(), 1);
}

#[tokio::test]
async fn a_decline_is_a_402_that_is_stored_and_replayed() {
    let app = TestApp::spawn().await;
    let body =
        json!({"amount": 900, "currency": "eur", "source": "tok_chargeDeclinedInsufficientFunds"});

    let declined = app.pay("order-2", body.clone()).await;
    let retry = app.pay("order-2", body).await;

    let problem = declined.problem(StatusCode::PAYMENT_REQUIRED);
    assert_eq!(problem["decline_code"], "insufficient_funds");
    assert_eq!(problem["payment"]["status"], "failed");
    assert_eq!(retry.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(retry.body, declined.body);
    assert_eq!(retry.header("idempotent-replayed"), "true");
    assert_eq!(app.charges().len(), 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_a_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.pay("order-3", visa(2000)).await;
    let events_before = app.unpublished_events().await.len();

    for other in [
        visa(2001),
        json!({"amount": 2000, "currency": "eur", "source": "tok_visa"}),
        json!({"amount": 2000, "currency": "usd", "source": "tok_mastercard"}),
        json!({"amount": 2000, "currency": "usd", "source": "tok_visa", "description": "more"}),
    ] {
        let response = app.pay("order-3", other.clone()).await;
        let problem = response.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            problem["type"], "tag:sdlab.dev,2026:idempotency-key-reused",
            "{other}"
        );
        assert_eq!(problem["errors"][0]["parameter"], "Idempotency-Key");
    }

    assert_eq!(app.charges().len(), 1);
    assert_eq!(app.all_payments().await.len(), 1);
    assert_eq!(app.unpublished_events().await.len(), events_before);
}

#[tokio::test]
async fn key_order_whitespace_and_currency_case_do_not_make_another_request() {
    let app = TestApp::spawn().await;
    let first = app
        .pay_as(
            &app.key,
            Some("order-4"),
            r#"{"amount":1500,"currency":"usd","source":"tok_visa"}"#.into(),
        )
        .await;

    let reordered = app
        .pay_as(
            &app.key,
            Some("order-4"),
            "{\n  \"source\": \"tok_visa\",\n  \"currency\": \"USD\",\n  \"amount\": 1500\n}"
                .into(),
        )
        .await;

    assert_eq!(reordered.header("idempotent-replayed"), "true");
    assert_eq!(reordered.body, first.body);
}

#[tokio::test]
async fn missing_empty_long_or_non_ascii_keys_are_400_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let body = visa(100).to_string();
    let long = "k".repeat(256);

    for key in [
        None,
        Some(""),
        Some("\"\""),
        Some(long.as_str()),
        Some("tab\there"),
    ] {
        let response = app.pay_as(&app.key, key, body.clone()).await;
        let problem = response.problem(StatusCode::BAD_REQUEST);
        assert_eq!(
            problem["errors"][0]["parameter"], "Idempotency-Key",
            "{key:?}"
        );
    }

    assert!(app.charges().is_empty());
    assert!(app.all_payments().await.is_empty());
}

#[tokio::test]
async fn a_refused_request_is_not_stored_so_the_fixed_one_goes_through_with_the_same_key() {
    let app = TestApp::spawn().await;

    let invalid = app.pay("order-5", visa(0)).await;
    invalid.invalid_field("amount");
    let unknown_client = app
        .pay_as(
            "sk_0000000000000000000000000000000000000000",
            Some("order-5"),
            visa(100).to_string(),
        )
        .await;
    unknown_client.problem(StatusCode::UNAUTHORIZED);
    let fixed = app.pay("order-5", visa(100)).await;

    assert_eq!(fixed.status, StatusCode::CREATED);
    assert!(fixed.headers.get("idempotent-replayed").is_none());
    assert_eq!(app.charges().len(), 1);
}

#[tokio::test]
async fn two_clients_using_one_key_make_two_independent_payments() {
    let app = TestApp::spawn().await;
    let other = app.new_client("other").await;

    let mine = app.pay("shared-key", visa(1000)).await;
    let theirs = app
        .pay_as(&other, Some("shared-key"), visa(3000).to_string())
        .await;

    assert_eq!(mine.status, StatusCode::CREATED);
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert!(theirs.headers.get("idempotent-replayed").is_none());
    assert_eq!(theirs.json()["amount"], 3000);
    assert_ne!(mine.json()["id"], theirs.json()["id"]);
    assert_eq!(app.charges().len(), 2);
}

#[tokio::test]
async fn a_key_replays_until_its_retention_ends_and_is_then_free_for_a_new_payment() {
    let app = TestApp::spawn().await;
    let first = app.pay("order-6", visa(2000)).await;

    app.clock.advance(Duration::from_secs(24 * 3600 - 1));
    let within = app.pay("order-6", visa(2000)).await;
    app.clock.advance(Duration::from_secs(2));
    let after = app.pay("order-6", visa(4000)).await;

    assert_eq!(within.header("idempotent-replayed"), "true");
    assert_eq!(after.status, StatusCode::CREATED);
    assert!(after.headers.get("idempotent-replayed").is_none());
    assert_ne!(after.json()["id"], first.json()["id"]);
    assert_eq!(app.charges().len(), 2);
}

#[tokio::test]
async fn the_reaper_deletes_expired_keys_and_keeps_the_payments() {
    let app = TestApp::spawn().await;
    app.pay("old", visa(100)).await;
    app.clock.advance(Duration::from_secs(23 * 3600));
    app.pay("recent", visa(200)).await;
    app.clock.advance(Duration::from_secs(2 * 3600));

    let deleted = app.payments().reap_expired_keys().await.unwrap();

    assert_eq!(deleted, 1);
    assert_eq!(app.all_payments().await.len(), 2);
    // The recent key still replays; the old one is gone, so its next use is a new payment.
    assert_eq!(
        app.pay("recent", visa(200))
            .await
            .header("idempotent-replayed"),
        "true"
    );
    let reused = app.pay("old", visa(100)).await;
    assert!(reused.headers.get("idempotent-replayed").is_none());
    assert_eq!(app.charges().len(), 3);
}
