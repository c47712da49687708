//! Following links: status codes, expiry, visit limits, HEAD, counting.

use std::time::Duration;

use axum::http::{StatusCode, header};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn a_link_redirects_with_a_302_to_its_url() {
    let app = TestApp::spawn().await;
    let code = app
        .create_code(json!({ "url": "https://example.com/landing" }))
        .await;

    let response = app.visit(&code).await;

    assert_eq!(response.status, StatusCode::FOUND);
    assert_eq!(response.location(), "https://example.com/landing");
    assert!(!response.headers.contains_key(header::CACHE_CONTROL));
}

#[tokio::test]
async fn a_301_policy_answers_with_a_bounded_cache_lifetime() {
    let app = TestApp::spawn_with(|settings| {
        settings.redirect.status = StatusCode::MOVED_PERMANENTLY;
        settings.redirect.max_age = Duration::from_secs(86_400);
    })
    .await;
    let forever = app
        .create_code(json!({ "url": "https://example.com/" }))
        .await;
    let for_an_hour = app
        .create_code(json!({ "url": "https://example.com/", "expires_at": app.in_an_hour() }))
        .await;
    let limited = app
        .create_code(json!({ "url": "https://example.com/", "max_visits": 3 }))
        .await;

    let response = app.visit(&forever).await;
    assert_eq!(response.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        response.headers[header::CACHE_CONTROL],
        "private, max-age=86400"
    );

    let response = app.visit(&for_an_hour).await;
    assert_eq!(
        response.headers[header::CACHE_CONTROL],
        "private, max-age=3600"
    );

    let response = app.visit(&limited).await;
    assert_eq!(
        response.status,
        StatusCode::FOUND,
        "each visit of a limited link must reach us"
    );
}

#[tokio::test]
async fn unknown_and_malformed_codes_are_404_problems() {
    let app = TestApp::spawn().await;

    for code in ["zzzzzzz", "no-such-alias", "favicon.ico", "a%20b"] {
        app.visit(code).await.problem(StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_link_stops_redirecting_at_its_expiry_even_when_cached() {
    let app = TestApp::spawn().await;
    let code = app
        .create_code(json!({ "url": "https://example.com/", "expires_at": app.in_an_hour() }))
        .await;
    assert_eq!(app.visit(&code).await.status, StatusCode::FOUND);

    app.clock.advance(Duration::from_secs(3599));
    assert_eq!(app.visit(&code).await.status, StatusCode::FOUND);

    app.clock.advance(Duration::from_secs(1));
    app.visit(&code).await.problem(StatusCode::NOT_FOUND);
    assert_eq!(app.head(&code).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_expired_link_is_still_visible_to_its_owner() {
    let app = TestApp::spawn().await;
    let code = app
        .create_code(json!({ "url": "https://example.com/", "expires_at": app.in_an_hour() }))
        .await;

    app.clock.advance(Duration::from_secs(7200));

    assert_eq!(app.stats(&code, &app.key).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_link_with_max_visits_serves_exactly_that_many_redirects() {
    let app = TestApp::spawn().await;
    let code = app
        .create_code(json!({ "url": "https://example.com/", "max_visits": 3 }))
        .await;

    for _ in 0..3 {
        assert_eq!(app.visit(&code).await.status, StatusCode::FOUND);
    }
    app.visit(&code).await.problem(StatusCode::NOT_FOUND);
    app.visit(&code).await.problem(StatusCode::NOT_FOUND);

    let stats = app.stats(&code, &app.key).await.json();
    assert_eq!(stats["visits"], 3);
}

#[tokio::test]
async fn head_answers_like_get_but_counts_nothing() {
    let app = TestApp::spawn().await;
    let code = app
        .create_code(json!({ "url": "https://example.com/", "max_visits": 1 }))
        .await;

    for _ in 0..3 {
        let response = app.head(&code).await;
        assert_eq!(response.status, StatusCode::FOUND);
        assert_eq!(response.location(), "https://example.com/");
        assert!(response.body.is_empty());
    }
    assert_eq!(app.stats(&code, &app.key).await.json()["visits"], 0);

    assert_eq!(app.visit(&code).await.status, StatusCode::FOUND);
    assert_eq!(app.head(&code).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.head("unknown").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn visits_are_counted_with_bots_apart() {
    let app = TestApp::spawn().await;
    let code = app
        .create_code(json!({ "url": "https://example.com/" }))
        .await;

    app.visit(&code).await;
    app.visit(&code).await;
    app.visit_as(
        &code,
        Some("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"),
    )
    .await;
    app.visit_as(&code, None).await;

    let stats = app.stats(&code, &app.key).await.json();
    assert_eq!(stats["visits"], 4);
    assert_eq!(stats["bot_visits"], 2);
}

#[tokio::test]
async fn counted_visits_reach_the_database_when_flushed() {
    let app = TestApp::spawn().await;
    let plain = app
        .create_code(json!({ "url": "https://example.com/" }))
        .await;
    let limited = app
        .create_code(json!({ "url": "https://example.com/", "max_visits": 10 }))
        .await;
    for code in [&plain, &plain, &limited, &limited, &limited] {
        app.visit(code).await;
    }
    app.visit_as(&limited, Some("curl/8.5.0")).await;

    let flushed = app.shortener.visits().flush().await.unwrap();

    assert_eq!(flushed, 2);
    let (database, cache) = app.backends.another_instance().await;
    drop(cache);
    let store = url_shortener::store::for_database(&database);
    let read = |code: &str| {
        let store = store.clone();
        let code = url_shortener::domain::ShortCode::parse(code).unwrap();
        async move { store.find_link(&code).await.unwrap().unwrap() }
    };
    let plain = read(&plain).await;
    assert_eq!((plain.visits, plain.bot_visits), (2, 0));
    let limited = read(&limited).await;
    assert_eq!(
        (limited.visits, limited.bot_visits),
        (4, 1),
        "counted once, not twice"
    );
}
