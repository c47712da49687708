//! Reading payments, client keys, and invalid input.

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, visa};

#[tokio::test]
async fn a_missing_or_unknown_api_key_is_401() {
    let app = TestApp::spawn().await;

    let unknown = app
        .pay_as(
            "sk_1111111111111111111111111111111111111111",
            Some("k"),
            visa(1).to_string(),
        )
        .await;
    let missing = app
        .send(
            axum::http::Request::get("/v1/payments")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;

    unknown.problem(StatusCode::UNAUTHORIZED);
    missing.problem(StatusCode::UNAUTHORIZED);
    assert!(missing.headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn a_payment_is_readable_by_its_client_and_not_found_for_another() {
    let app = TestApp::spawn().await;
    let created = app.pay("order-1", visa(700)).await.json();
    let id = created["id"].as_str().unwrap();
    let other = app.new_client("other").await;

    let mine = app.get(&format!("/v1/payments/{id}")).await;
    let theirs = app.get_as(&other, &format!("/v1/payments/{id}")).await;
    let nonsense = app.get("/v1/payments/pay_nope").await;

    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.json(), created);
    theirs.problem(StatusCode::NOT_FOUND);
    nonsense.problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_payment_id_that_is_not_utf8_is_a_400_problem_naming_it() {
    let app = TestApp::spawn().await;

    // `%FF` and `%C3%28` are percent escapes of bytes that are not UTF-8.
    for path in ["/v1/payments/%FF", "/v1/payments/pay_%C3%28"] {
        let problem = app.get(path).await.problem(StatusCode::BAD_REQUEST);
        assert_eq!(problem["errors"][0]["parameter"], "id", "{problem}");
    }
    // A path no route matches is a 404 problem whatever its bytes.
    app.get("/%FF").await.problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_are_newest_first_and_a_cursor_is_stable_while_payments_arrive() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.pay(&format!("p{i}"), visa(100 + i)).await;
    }

    let first = app.get("/v1/payments?limit=2").await.json();
    app.pay("p5", visa(105)).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get(&format!("/v1/payments?limit=2&cursor={cursor}"))
        .await
        .json();
    let cursor = second["next_cursor"].as_str().unwrap();
    let last = app
        .get(&format!("/v1/payments?limit=2&cursor={cursor}"))
        .await
        .json();

    let amounts = |page: &serde_json::Value| -> Vec<u64> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["amount"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(amounts(&first), [104, 103]);
    assert_eq!(amounts(&second), [102, 101]);
    assert_eq!(amounts(&last), [100]);
    assert!(last["next_cursor"].is_null());
}

#[tokio::test]
async fn bad_limits_and_cursors_are_400_naming_the_parameter() {
    let app = TestApp::spawn().await;

    for (query, parameter) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=abc", "cursor"),
        ("page=2", "page"),
        ("limit=5&limit=6", "limit"),
    ] {
        let response = app.get(&format!("/v1/payments?{query}")).await;
        let problem = response.problem(StatusCode::BAD_REQUEST);
        assert_eq!(problem["errors"][0]["parameter"], parameter, "{query}");
    }
    // Values are percent-decoded, as clients encode them.
    let response = app.get("/v1/payments?limit=%35").await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
}

#[tokio::test]
async fn invalid_fields_are_422_naming_the_field_and_charge_nothing() {
    let app = TestApp::spawn().await;

    for (body, field) in [
        (
            json!({"amount": 0, "currency": "usd", "source": "tok_visa"}),
            "amount",
        ),
        (
            json!({"amount": 100000000, "currency": "usd", "source": "tok_visa"}),
            "amount",
        ),
        (
            json!({"amount": 10.5, "currency": "usd", "source": "tok_visa"}),
            "amount",
        ),
        (
            json!({"amount": 100, "currency": "XYZ", "source": "tok_visa"}),
            "currency",
        ),
        (json!({"amount": 100, "currency": "usd"}), ""),
        (
            json!({"amount": 100, "currency": "usd", "source": ""}),
            "source",
        ),
        (
            json!({"amount": 100, "currency": "usd", "source": "tok_visa", "tip": 5}),
            "",
        ),
    ] {
        let response = app.pay("bad", body.clone()).await;
        let problem = response.problem(StatusCode::UNPROCESSABLE_ENTITY);
        if !field.is_empty() {
            assert_eq!(
                problem["errors"][0]["pointer"],
                format!("#/{field}"),
                "{body}"
            );
        }
    }
    let not_json = app.pay_as(&app.key, Some("bad"), "{amount".into()).await;
    not_json.problem(StatusCode::BAD_REQUEST);
    assert!(app.charges().is_empty());
}

#[cfg(feature = "bench")]
#[tokio::test]
async fn without_the_key_check_every_request_is_a_new_payment() {
    // The benchmark's baseline (PAYMENTS_IDEMPOTENCY=off): what the key check saves a client from.
    let app = TestApp::spawn_with(|settings| {
        settings.idempotency = idempotency_demo::settings::Idempotency::Off;
    })
    .await;

    let first = app.pay_as(&app.key, None, visa(100).to_string()).await;
    let retry = app
        .pay_as(&app.key, Some("ignored"), visa(100).to_string())
        .await;

    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_ne!(first.json()["id"], retry.json()["id"]);
    assert_eq!(app.charges().len(), 2);
    assert_eq!(app.unpublished_events().await.len(), 2);
}
