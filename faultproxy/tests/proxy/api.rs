//! The API's contract: Toxiproxy's paths, bodies and statuses, problem+json errors that name
//! the field, and the admin token.

use axum::{body::Body, http::Request};
use faultproxy::{Proxies, api};
use platform::{auth::AdminToken, testing::http::send_to};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{Api, closed_port, echo_server};

#[tokio::test]
async fn the_api_opens_to_the_admin_token_alone() {
    let api = Api::new();
    let without = Request::get("/proxies").body(Body::empty()).unwrap();
    assert_eq!(send_to(&api.router, without).await.status, 401);
    let other = Request::get("/proxies")
        .header(
            "authorization",
            format!("Bearer {}", AdminToken::generate().expose()),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(send_to(&api.router, other).await.status, 401);

    let closed = api::router(Proxies::new(), None);
    let request = Request::get("/version").body(Body::empty()).unwrap();
    send_to(&closed, request)
        .await
        .problem(axum::http::StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn version_says_what_answers() {
    let api = Api::new();
    let version = api.get("/version").await;
    assert_eq!(version.status, 200);
    assert!(version.json()["version"].is_string());
}

#[tokio::test]
async fn a_proxy_is_created_listed_shown_and_deleted() {
    let api = Api::new();
    let upstream = echo_server().await;

    let created = api
        .post(
            "/proxies",
            json!({"name": "shop-redis", "listen": "127.0.0.1:0", "upstream": upstream.to_string()}),
        )
        .await;
    assert_eq!(created.status, 201);
    let proxy = created.json();
    assert_eq!(proxy["name"], "shop-redis");
    assert_eq!(proxy["upstream"], upstream.to_string());
    assert_eq!(proxy["enabled"], true);
    assert_eq!(proxy["toxics"], json!([]));
    // Port 0 is resolved: the answer says where clients connect.
    let listen = crate::helpers::listen(&proxy);
    assert_ne!(listen.port(), 0);
    TcpStream::connect(listen).await.unwrap();

    let all = api.get("/proxies").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.json(), json!({"shop-redis": proxy}));
    let one = api.get("/proxies/shop-redis").await;
    assert_eq!(one.json(), proxy);

    let deleted = api.delete("/proxies/shop-redis").await;
    assert_eq!(deleted.status, 204);
    assert!(TcpStream::connect(listen).await.is_err(), "still listening");
    api.get("/proxies/shop-redis")
        .await
        .problem(axum::http::StatusCode::NOT_FOUND);
    assert_eq!(api.get("/proxies").await.json(), json!({}));
}

#[tokio::test]
async fn a_proxy_without_a_listen_address_takes_a_free_loopback_port() {
    let api = Api::new();
    let upstream = echo_server().await;
    let created = api
        .post(
            "/proxies",
            json!({"name": "db", "upstream": upstream.to_string(), "toxics": []}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.json());
    assert!(crate::helpers::listen(&created.json()).ip().is_loopback());
}

#[tokio::test]
async fn a_proxy_created_disabled_does_not_listen_until_enabled() {
    let api = Api::new();
    let port = closed_port().await;
    let created = api
        .post(
            "/proxies",
            json!({"name": "db", "listen": port.to_string(), "upstream": "127.0.0.1:5432", "enabled": false}),
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.json()["enabled"], false);
    assert!(TcpStream::connect(port).await.is_err());

    api.enable("db", true).await;
    TcpStream::connect(port).await.unwrap();
}

#[tokio::test]
async fn a_taken_name_or_address_is_a_conflict_that_changes_nothing() {
    let api = Api::new();
    let upstream = echo_server().await;
    let first = api.proxy("db", upstream).await;

    let again = api
        .post("/proxies", json!({"name": "db", "upstream": "127.0.0.1:1"}))
        .await;
    again.problem(axum::http::StatusCode::CONFLICT);
    assert_eq!(
        api.get("/proxies/db").await.json()["upstream"],
        upstream.to_string()
    );

    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere = api
        .post(
            "/proxies",
            json!({"name": "cache", "listen": taken.local_addr().unwrap().to_string(), "upstream": "127.0.0.1:6379"}),
        )
        .await;
    let problem = elsewhere.problem(axum::http::StatusCode::CONFLICT);
    assert!(
        problem["detail"].as_str().unwrap().contains("listen"),
        "{problem}"
    );
    api.get("/proxies/cache")
        .await
        .problem(axum::http::StatusCode::NOT_FOUND);
    TcpStream::connect(first).await.unwrap();
}

#[tokio::test]
async fn bad_proxies_are_refused_naming_the_field() {
    let api = Api::new();
    let cases = [
        (json!({"name": "db"}), "upstream"),
        (json!({"upstream": "127.0.0.1:5432"}), "name"),
        (json!({"name": "a/b", "upstream": "127.0.0.1:5432"}), "name"),
        (json!({"name": "db", "upstream": "127.0.0.1"}), "upstream"),
        (
            json!({"name": "db", "upstream": "127.0.0.1:5432", "listen": "0.0.0.0:0"}),
            "listen",
        ),
        (
            json!({"name": "db", "upstream": "127.0.0.1:5432", "listen": "here"}),
            "listen",
        ),
        (
            json!({"name": "db", "upstream": "127.0.0.1:5432", "enabled": "yes"}),
            "enabled",
        ),
        (
            json!({"name": "db", "upstream": "127.0.0.1:5432", "enabeld": false}),
            "enabeld",
        ),
    ];
    for (body, field) in cases {
        api.post("/proxies", body).await.invalid_field(field);
    }
    assert_eq!(api.get("/proxies").await.json(), json!({}));

    let request = Request::post("/proxies")
        .header("authorization", format!("Bearer {}", api.token.expose()))
        .header("content-type", "application/json")
        .body(Body::from("{\"name\": "))
        .unwrap();
    send_to(&api.router, request)
        .await
        .problem(axum::http::StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_update_cannot_rename_a_proxy_or_take_it_off_the_loopback() {
    let api = Api::new();
    api.proxy("db", echo_server().await).await;
    api.post("/proxies/db", json!({"name": "other"}))
        .await
        .invalid_field("name");
    api.post("/proxies/db", json!({"listen": "0.0.0.0:15432"}))
        .await
        .invalid_field("listen");
    api.post("/proxies/nope", json!({"enabled": false}))
        .await
        .problem(axum::http::StatusCode::NOT_FOUND);
    assert_eq!(api.get("/proxies/db").await.json()["enabled"], true);
}

#[tokio::test]
async fn toxics_are_added_shown_updated_and_removed() {
    let api = Api::new();
    api.proxy("db", echo_server().await).await;

    let added = api
        .post(
            "/proxies/db/toxics",
            json!({"type": "latency", "attributes": {"latency": 300}}),
        )
        .await;
    assert_eq!(added.status, 200);
    let toxic = json!({
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 300, "jitter": 0},
    });
    assert_eq!(added.json(), toxic);
    api.post("/proxies/db/toxics", json!({"type": "latency"}))
        .await
        .problem(axum::http::StatusCode::CONFLICT);
    assert_eq!(api.get("/proxies/db/toxics").await.json(), json!([toxic]));
    assert_eq!(
        api.get("/proxies/db").await.json()["toxics"],
        json!([toxic])
    );

    let updated = api
        .post(
            "/proxies/db/toxics/latency_downstream",
            json!({"attributes": {"jitter": 50}}),
        )
        .await;
    assert_eq!(updated.status, 200);
    assert_eq!(
        updated.json()["attributes"],
        json!({"latency": 300, "jitter": 50})
    );
    assert_eq!(
        api.get("/proxies/db/toxics/latency_downstream")
            .await
            .json(),
        updated.json()
    );

    assert_eq!(
        api.delete("/proxies/db/toxics/latency_downstream")
            .await
            .status,
        204
    );
    api.get("/proxies/db/toxics/latency_downstream")
        .await
        .problem(axum::http::StatusCode::NOT_FOUND);
    api.delete("/proxies/db/toxics/latency_downstream")
        .await
        .problem(axum::http::StatusCode::NOT_FOUND);
    assert_eq!(api.get("/proxies/db/toxics").await.json(), json!([]));
}

#[tokio::test]
async fn bad_toxics_are_refused_naming_the_field() {
    let api = Api::new();
    api.proxy("db", echo_server().await).await;
    let cases = [
        (json!({"type": "bandwidth"}), "type"),
        (json!({"attributes": {"latency": 5}}), "type"),
        (json!({"type": "latency", "stream": "sideways"}), "stream"),
        (json!({"type": "latency", "toxicity": 2}), "toxicity"),
        (
            json!({"type": "latency", "attributes": {"latency": -5}}),
            "attributes/latency",
        ),
        (
            json!({"type": "timeout", "attributes": {"jitter": 5}}),
            "attributes/jitter",
        ),
        (json!({"type": "latency", "name": "a b"}), "name"),
        (
            json!({"type": "latency", "direction": "upstream"}),
            "direction",
        ),
    ];
    for (body, field) in cases {
        api.post("/proxies/db/toxics", body)
            .await
            .invalid_field(field);
    }
    assert_eq!(api.get("/proxies/db/toxics").await.json(), json!([]));
    api.post("/proxies/nope/toxics", json!({"type": "latency"}))
        .await
        .problem(axum::http::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reset_enables_every_proxy_and_removes_every_toxic() {
    let api = Api::new();
    let upstream = echo_server().await;
    let db = api.proxy("db", upstream).await;
    api.proxy("cache", upstream).await;
    api.toxic("cache", json!({"type": "timeout", "stream": "upstream"}))
        .await;
    api.enable("db", false).await;

    let reset = api.post("/reset", json!({})).await;
    assert_eq!(reset.status, 204);
    let proxies = api.get("/proxies").await.json();
    for name in ["db", "cache"] {
        assert_eq!(proxies[name]["enabled"], true, "{proxies}");
        assert_eq!(proxies[name]["toxics"], json!([]), "{proxies}");
    }
    TcpStream::connect(db).await.unwrap();
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let api = Api::new();
    api.get("/nothing")
        .await
        .problem(axum::http::StatusCode::NOT_FOUND);
    api.delete("/proxies")
        .await
        .problem(axum::http::StatusCode::METHOD_NOT_ALLOWED);
}
