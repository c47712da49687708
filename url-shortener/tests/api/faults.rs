//! The fault switches (`PUT /admin/faults/{database,redis}`), flipped over HTTP as the console
//! does: what the shortener does without each dependency, and that it is whole again once the
//! switch is undone.

use std::sync::Arc;

use axum::http::{Method, StatusCode, header};
use platform::clock::Clock;
use serde_json::json;
use url_shortener::{
    domain::ShortCode,
    store::{self, LinkStore},
};

use crate::helpers::{TestApp, json_request};

/// The store on the test's database, on a pool of its own and behind no switch: what is really
/// there, whatever the app's switches say.
async fn raw_store(app: &TestApp) -> Arc<dyn LinkStore> {
    let (database, _) = app.backends.another_instance().await;
    store::for_database(&database)
}

fn cache_key(code: &str) -> String {
    format!("link:{code}")
}

#[tokio::test]
async fn the_shortener_has_a_database_and_a_redis_switch_for_the_admin_token_alone() {
    let app = TestApp::spawn().await;

    let listed = app
        .send(json_request(
            Method::GET,
            "/admin/faults",
            Some(app.settings.admin_token.as_ref().unwrap().expose()),
            String::new(),
        ))
        .await;
    let stranger = app
        .send(json_request(
            Method::PUT,
            "/admin/faults/database",
            Some(&app.key),
            json!({ "unreachable": true }).to_string(),
        ))
        .await;

    assert_eq!(
        listed.json(),
        json!({
            "database": { "latency_ms": 0, "unreachable": false },
            "redis": { "latency_ms": 0, "unreachable": false },
        })
    );
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.create(json!({ "url": "https://example.com/" }))
            .await
            .status,
        StatusCode::CREATED,
        "an API key is not the admin token: nothing was switched"
    );
}

#[tokio::test]
async fn with_redis_unreachable_redirects_and_creates_go_to_the_database_until_it_is_back() {
    let app = TestApp::spawn().await;
    let before = app.code_visited_once().await;
    let errors_before = app
        .metric(r#"shortener_cache_lookups_total{result="error"}"#)
        .await;

    app.set_fault("redis", json!({ "unreachable": true })).await;
    let created = app
        .create_code(json!({ "url": "https://example.com/during" }))
        .await;
    let redirects = [app.visit(&before).await, app.visit(&created).await];
    let readiness = app.readiness().await;

    for redirect in &redirects {
        assert_eq!(redirect.status, StatusCode::FOUND);
    }
    assert_eq!(redirects[1].location(), "https://example.com/during");
    assert!(
        app.backends
            .cache
            .get(&cache_key(&created))
            .await
            .unwrap()
            .is_none(),
        "nothing reached the cache"
    );
    assert!(
        app.metric(r#"shortener_cache_lookups_total{result="error"}"#)
            .await
            >= errors_before + 2.0
    );
    assert_eq!(readiness.status, StatusCode::OK);
    assert_eq!(readiness.json()["status"], "degraded");
    assert!(readiness.json()["checks"]["cache"]["error"].is_string());

    app.set_fault("redis", json!({})).await;
    assert_eq!(app.visit(&created).await.status, StatusCode::FOUND);

    assert!(
        app.backends
            .cache
            .get(&cache_key(&created))
            .await
            .unwrap()
            .is_some(),
        "the first redirect after the undo filled the cache"
    );
    assert_eq!(app.readiness().await.json()["status"], "ready");
    let stats = app.stats(&created, &app.key).await.json();
    assert_eq!(stats["visits"], 2, "both redirects counted");
}

#[tokio::test]
async fn redis_slower_than_its_timeout_is_a_miss_and_faster_than_it_still_a_hit() {
    let app = TestApp::spawn().await;
    let code = app.code_visited_once().await;
    // Deleted behind the cache's back: the cache still says "redirect", the database "no such
    // link", so each answer below shows which of the two gave it.
    let deleted = raw_store(&app)
        .await
        .delete_link(&ShortCode::parse(&code).unwrap(), app.clock.now())
        .await
        .unwrap();
    assert!(deleted);
    let timeout = app.settings.redis_timeout.as_millis() as u64;

    app.set_fault("redis", json!({ "latency_ms": timeout * 4 }))
        .await;
    let slower_than_the_timeout = app.visit(&code).await;
    app.set_fault("redis", json!({ "latency_ms": timeout / 5 }))
        .await;
    let within_the_timeout = app.visit(&code).await;

    slower_than_the_timeout.problem(StatusCode::NOT_FOUND);
    assert_eq!(
        within_the_timeout.status,
        StatusCode::FOUND,
        "the cache answered"
    );
}

#[tokio::test]
async fn with_the_database_unreachable_cached_links_redirect_and_the_rest_is_a_clean_503() {
    let app = TestApp::spawn().await;
    let cached = app.code_visited_once().await;

    app.set_fault("database", json!({ "unreachable": true }))
        .await;
    let redirects = [app.visit(&cached).await, app.visit(&cached).await];
    let uncached = app.visit("nevermade").await;
    let create = app
        .create(json!({ "url": "https://example.com/", "alias": "made-in-the-outage" }))
        .await;
    let new_key = app
        .post_json("/api/v1/keys", None, json!({ "name": "during" }))
        .await;
    let readiness = app.readiness().await;

    for redirect in &redirects {
        assert_eq!(redirect.status, StatusCode::FOUND);
    }
    for refused in [&uncached, &create, &new_key] {
        let problem = refused.problem(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(problem["type"], "tag:sdlab.dev,2026:database-unavailable");
        assert!(
            !problem.to_string().contains("switch"),
            "no internals: {problem}"
        );
        assert_eq!(refused.header(header::RETRY_AFTER.as_str()), "1");
    }
    assert_eq!(readiness.status, StatusCode::OK, "cached links still work");
    assert_eq!(readiness.json()["status"], "degraded");
    assert!(readiness.json()["checks"]["database"]["error"].is_string());

    app.set_fault("database", json!({})).await;

    assert_eq!(
        app.create(json!({ "url": "https://example.com/", "alias": "made-in-the-outage" }))
            .await
            .status,
        StatusCode::CREATED,
        "the refused create wrote nothing, not even its alias"
    );
    assert_eq!(app.visit("nevermade").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.readiness().await.json()["status"], "ready");
}

#[tokio::test]
async fn visits_counted_while_the_database_is_unreachable_are_written_once_it_is_back() {
    let app = TestApp::spawn().await;
    let code = app.code_visited_once().await;
    let failed_flushes = app
        .metric(r#"shortener_visit_flushes_total{outcome="error"}"#)
        .await;

    app.set_fault("database", json!({ "unreachable": true }))
        .await;
    for _ in 0..3 {
        assert_eq!(app.visit(&code).await.status, StatusCode::FOUND);
    }
    let flushed_during = app.shortener.visits().flush().await;
    let flushed_again = app.shortener.visits().flush().await;

    assert!(flushed_during.is_err() && flushed_again.is_err());
    assert!(
        app.metric(r#"shortener_visit_flushes_total{outcome="error"}"#)
            .await
            >= failed_flushes + 2.0
    );
    let written = raw_store(&app)
        .await
        .find_link(&ShortCode::parse(&code).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(written.visits, 0, "nothing reached the database");

    app.set_fault("database", json!({})).await;
    app.shortener.visits().flush().await.unwrap();

    let written = raw_store(&app)
        .await
        .find_link(&ShortCode::parse(&code).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(written.visits, 4, "every visit, once");
    assert_eq!(app.stats(&code, &app.key).await.json()["visits"], 4);
}
