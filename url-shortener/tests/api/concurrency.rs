//! Many requests at once, on two instances sharing the database (and, with Redis, the cache).

use axum::http::StatusCode;
use serde_json::json;
use std::collections::HashSet;
use tokio::task::JoinSet;

use crate::helpers::{BROWSER, TestApp, json_request, send_to};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_on_two_instances_get_unique_codes() {
    let app = TestApp::spawn().await;
    let (_, second) = app.another_instance().await;
    let routers = [app.router.clone(), second];

    let mut creates = JoinSet::new();
    for i in 0..200 {
        let router = routers[i % 2].clone();
        let request = json_request(
            axum::http::Method::POST,
            "/api/v1/links",
            Some(&app.key),
            json!({ "url": format!("https://example.com/{i}") }).to_string(),
        );
        creates.spawn(async move { send_to(&router, request).await });
    }
    let mut codes = HashSet::new();
    while let Some(response) = creates.join_next().await {
        let response = response.unwrap();
        assert_eq!(response.status, StatusCode::CREATED);
        codes.insert(response.json()["code"].as_str().unwrap().to_owned());
    }

    assert_eq!(codes.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redirects_on_two_instances_never_exceed_max_visits() {
    let app = TestApp::spawn().await;
    let (_, second) = app.another_instance().await;
    let routers = [app.router.clone(), second];
    let code = app
        .create_code(json!({ "url": "https://example.com/", "max_visits": 10 }))
        .await;

    let mut visits = JoinSet::new();
    for i in 0..100 {
        let router = routers[i % 2].clone();
        let request = axum::http::Request::get(format!("/{code}"))
            .header("user-agent", BROWSER)
            .body(axum::body::Body::empty())
            .unwrap();
        visits.spawn(async move { send_to(&router, request).await.status });
    }
    let mut admitted = 0;
    while let Some(status) = visits.join_next().await {
        match status.unwrap() {
            StatusCode::FOUND => admitted += 1,
            StatusCode::NOT_FOUND => {}
            other => panic!("unexpected {other}"),
        }
    }

    assert_eq!(admitted, 10);
    assert_eq!(app.stats(&code, &app.key).await.json()["visits"], 10);
}
