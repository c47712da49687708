//! The machinery around the API: the cache, code generation, the shared endpoints, shutdown.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use platform::{
    auth::ApiKey,
    cache::{Cache, CacheError},
    clock::Clock,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url_shortener::{
    Application,
    domain::{NewLink, Permutation, ShortCode, TargetUrl},
    service::CreateLink,
    store::{self, LinkStore},
};

use crate::helpers::{BROWSER, TestApp, send_to};

async fn store_of(app: &TestApp) -> Arc<dyn LinkStore> {
    let (database, _) = app.backends.another_instance().await;
    store::for_database(&database)
}

#[tokio::test]
async fn a_cached_link_is_served_without_the_database() {
    let app = TestApp::spawn().await;
    let code = app
        .create_code(json!({ "url": "https://example.com/" }))
        .await;
    assert_eq!(app.visit(&code).await.status, StatusCode::FOUND);

    // Behind the cache's back, so nothing invalidates it.
    let store = store_of(&app).await;
    let deleted = store
        .delete_link(&ShortCode::parse(&code).unwrap(), app.clock.now())
        .await
        .unwrap();
    assert!(deleted);

    assert_eq!(
        app.visit(&code).await.status,
        StatusCode::FOUND,
        "served from the cache"
    );
}

#[tokio::test]
async fn an_unknown_code_is_remembered_so_repeats_do_not_reach_the_database() {
    let app = TestApp::spawn().await;
    app.visit("ghost12").await.problem(StatusCode::NOT_FOUND);

    // A link appears behind the cache's back; the negative entry still answers for it.
    let store = store_of(&app).await;
    let owner = app
        .shortener
        .authenticate(&ApiKey::parse(&app.key).unwrap())
        .await
        .unwrap();
    store
        .insert_link(&NewLink {
            code: ShortCode::parse("ghost12").unwrap(),
            url: TargetUrl::parse("https://example.com/", &app.settings.served_at(app.addr))
                .unwrap(),
            owner,
            created_at: app.clock.now(),
            expires_at: None,
            max_visits: None,
        })
        .await
        .unwrap();

    app.visit("ghost12").await.problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn creating_a_link_clears_the_negative_entry_for_its_code() {
    let app = TestApp::spawn().await;
    app.visit("fresh-alias")
        .await
        .problem(StatusCode::NOT_FOUND);

    app.create_code(json!({ "url": "https://example.com/", "alias": "fresh-alias" }))
        .await;

    assert_eq!(app.visit("fresh-alias").await.status, StatusCode::FOUND);
}

/// A cache that is down: every call fails.
struct DownCache;

#[async_trait]
impl Cache for DownCache {
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Err(down())
    }
    async fn set(&self, _: &str, _: &[u8], _: Duration) -> Result<(), CacheError> {
        Err(down())
    }
    async fn add(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, CacheError> {
        Err(down())
    }
    async fn delete(&self, _: &str) -> Result<(), CacheError> {
        Err(down())
    }
    async fn ping(&self) -> Result<(), CacheError> {
        Err(down())
    }
    fn backend(&self) -> &'static str {
        "down"
    }
}

fn down() -> CacheError {
    CacheError::Redis(redis::RedisError::from((
        redis::ErrorKind::Io,
        "connection refused",
    )))
}

#[tokio::test]
async fn with_the_cache_down_links_are_served_from_the_database_and_readiness_is_degraded() {
    let app = TestApp::spawn().await;
    let (database, _) = app.backends.another_instance().await;
    let degraded = Application::build_with(
        app.settings.clone(),
        database,
        Arc::new(DownCache),
        Arc::new(app.clock.clone()),
        Arc::new(app.hosts.clone()),
    )
    .await
    .unwrap();
    let owner = degraded
        .shortener()
        .authenticate(&ApiKey::parse(&app.key).unwrap())
        .await
        .unwrap();
    let link = degraded
        .shortener()
        .create(
            owner,
            CreateLink {
                url: "https://example.com/".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let redirect = send_to(
        &degraded.router(),
        Request::get(format!("/{}", link.code))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let readiness = send_to(
        &degraded.router(),
        Request::get("/readyz").body(Body::empty()).unwrap(),
    )
    .await;

    assert_eq!(redirect.status, StatusCode::FOUND);
    assert_eq!(
        readiness.status,
        StatusCode::OK,
        "a cache outage must not empty the load balancer"
    );
    assert_eq!(readiness.json()["status"], "degraded");
    assert_eq!(readiness.json()["checks"]["database"], "ok");
}

#[tokio::test]
async fn consecutive_links_do_not_get_consecutive_codes() {
    let app = TestApp::spawn().await;
    let mut numbers = Vec::new();
    for _ in 0..5 {
        let code = app
            .create_code(json!({ "url": "https://example.com/" }))
            .await;
        numbers.push(ShortCode::parse(&code).unwrap().to_number().unwrap());
    }

    for pair in numbers.windows(2) {
        assert!(pair[0].abs_diff(pair[1]) > 1_000_000, "{numbers:?}");
    }
}

#[tokio::test]
async fn a_generated_code_already_held_by_an_alias_is_skipped() {
    let app = TestApp::spawn().await;
    // The test settings use this secret, and a fresh database hands out ID 1 first.
    let permutation = Permutation::new("test secret");
    let first = ShortCode::from_number(permutation.apply(1));
    let second = ShortCode::from_number(permutation.apply(2));
    app.create_code(json!({ "url": "https://alias.example/", "alias": first.as_str() }))
        .await;

    let code = app
        .create_code(json!({ "url": "https://generated.example/" }))
        .await;

    assert_eq!(code, second.as_str());
    assert_eq!(
        app.visit(first.as_str()).await.location(),
        "https://alias.example/"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_the_docs_page_is_served() {
    let app = TestApp::spawn().await;

    let spec = app
        .send(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .json();
    let docs = app
        .send(Request::get("/docs/").body(Body::empty()).unwrap())
        .await;

    for path in [
        "/api/v1/keys",
        "/api/v1/links",
        "/api/v1/links/{code}",
        "/{code}",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is missing");
    }
    assert!(spec["paths"]["/{code}"]["head"].is_object());
    assert!(spec["components"]["securitySchemes"]["api_key"].is_object());
    assert!(spec["components"]["schemas"]["Problem"].is_object());
    assert_eq!(docs.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&docs.body).contains("swagger"));
}

#[tokio::test]
async fn readiness_probes_the_database_and_the_cache() {
    let app = TestApp::spawn().await;

    let response = app
        .send(Request::get("/readyz").body(Body::empty()).unwrap())
        .await;

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.json()["checks"],
        json!({ "database": "ok", "cache": "ok" })
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_cache_lookups_from_the_first_request() {
    // No scrape before the requests: what happens before Prometheus first asks must count too.
    let app = TestApp::spawn().await;
    let code = app
        .create_code(json!({ "url": "https://example.com/" }))
        .await;
    app.visit(&code).await;
    app.visit("never-created").await;

    let page = app
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;

    let page = String::from_utf8_lossy(&page.body);
    let series = |needle: &str| page.lines().any(|line| line.contains(needle));
    assert!(series(r#"route="/{code}",status="302""#), "{page}");
    assert!(series(r#"route="/{code}",status="404""#), "{page}");
    assert!(series("http_request_duration_seconds_bucket"));
    assert!(
        series(r#"shortener_cache_lookups_total{result="hit"}"#),
        "{page}"
    );
}

/// One HTTP/1.1 request over a real socket; returns the status code.
async fn raw_get(port: u16, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {BROWSER}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response[9..12].parse().unwrap()
}

#[tokio::test]
async fn a_graceful_stop_writes_the_visits_not_yet_flushed() {
    let app = TestApp::spawn().await;
    let (database, cache) = app.backends.another_instance().await;
    let mut settings = app.settings.clone();
    settings.visit_flush_interval = Duration::from_secs(3600);
    let server = Application::build_with(
        settings,
        database,
        cache,
        Arc::new(app.clock.clone()),
        Arc::new(app.hosts.clone()),
    )
    .await
    .unwrap();
    let port = server.port();
    let code = app
        .create_code(json!({ "url": "https://example.com/" }))
        .await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until_stopped(async {
        stopped.await.ok();
    }));

    assert_eq!(raw_get(port, &format!("/{code}")).await, 302);
    assert_eq!(raw_get(port, &format!("/{code}")).await, 302);
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();

    let link = store_of(&app)
        .await
        .find_link(&ShortCode::parse(&code).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.visits, 2);
}

#[tokio::test]
async fn with_the_database_down_cached_links_still_redirect_and_readiness_is_degraded() {
    let app = TestApp::spawn().await;
    let cached = app
        .create_code(json!({ "url": "https://example.com/" }))
        .await;
    assert_eq!(app.visit(&cached).await.status, StatusCode::FOUND);

    app.backends.database.close().await;

    assert_eq!(app.visit(&cached).await.status, StatusCode::FOUND);
    let readiness = app
        .send(Request::get("/readyz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(readiness.status, StatusCode::OK);
    assert_eq!(readiness.json()["status"], "degraded");
    assert!(readiness.json()["checks"]["database"]["error"].is_string());
    let create = app
        .create(json!({ "url": "https://example.com/other" }))
        .await;
    let problem = create.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !problem.to_string().contains("pool"),
        "no internals: {problem}"
    );
}

#[tokio::test]
async fn readiness_says_which_database_and_cache_the_shortener_runs_on() {
    let app = TestApp::spawn().await;

    let readiness = app.readiness().await.json();

    let database = readiness["backends"]["database"].as_str().unwrap();
    let cache = readiness["backends"]["cache"].as_str().unwrap();
    match std::env::var("DATABASE_URL") {
        Ok(_) => assert!(database.starts_with("PostgreSQL at "), "{database}"),
        Err(_) => assert!(database.starts_with("SQLite at "), "{database}"),
    }
    match std::env::var("REDIS_URL") {
        Ok(_) => assert!(cache.starts_with("Redis at "), "{cache}"),
        Err(_) => assert_eq!(cache, "in-process"),
    }
    assert!(!database.contains('@'), "no credentials: {database}");
}
