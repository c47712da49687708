//! Creating, reading and deleting links.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use platform::clock::Clock;
use serde_json::json;

use crate::helpers::{TestApp, authorized, json_request};

#[tokio::test]
async fn a_created_link_has_a_seven_character_code_and_every_documented_field() {
    let app = TestApp::spawn().await;

    let response = app
        .create(json!({ "url": "https://example.com/some/page?x=1" }))
        .await;

    assert_eq!(response.status, StatusCode::CREATED);
    let body = response.json();
    let code = body["code"].as_str().unwrap();
    assert_eq!(code.len(), 7);
    assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(body["short_url"], format!("http://sho.test/{code}"));
    assert_eq!(body["url"], "https://example.com/some/page?x=1");
    assert!(body["created_at"].is_string());
    assert_eq!(body["expires_at"], json!(null));
    assert_eq!(body["max_visits"], json!(null));
    assert_eq!(body["visits"], 0);
    assert_eq!(
        response.headers[header::LOCATION],
        format!("/api/v1/links/{code}")
    );
}

#[tokio::test]
async fn a_link_reads_back_as_it_was_created() {
    let app = TestApp::spawn().await;
    let created = app
        .create(json!({
            "url": "https://example.com/",
            "expires_at": app.in_an_hour(),
            "max_visits": 5,
        }))
        .await
        .json();

    let read = app.stats(created["code"].as_str().unwrap(), &app.key).await;

    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json(), created);
}

#[tokio::test]
async fn an_expiry_with_an_offset_is_answered_in_utc_by_create_and_read_alike() {
    let app = TestApp::spawn().await;
    let local = (app.clock.now() + std::time::Duration::from_secs(3600))
        .to_offset(time::macros::offset!(+2));

    let created = app
        .create(
            json!({ "url": "https://example.com/", "expires_at": crate::helpers::rfc3339(local) }),
        )
        .await
        .json();
    let read = app
        .stats(created["code"].as_str().unwrap(), &app.key)
        .await
        .json();

    assert!(
        created["expires_at"].as_str().unwrap().ends_with('Z'),
        "{created}"
    );
    assert_eq!(created["expires_at"], read["expires_at"]);
}

#[tokio::test]
async fn a_custom_alias_becomes_the_code() {
    let app = TestApp::spawn().await;

    let response = app
        .create(json!({ "url": "https://example.com/", "alias": "summer-sale" }))
        .await;

    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.json()["code"], "summer-sale");
    assert_eq!(
        app.visit("summer-sale").await.location(),
        "https://example.com/"
    );
}

#[tokio::test]
async fn a_taken_alias_is_a_409_and_the_first_link_is_untouched() {
    let app = TestApp::spawn().await;
    app.create_code(json!({ "url": "https://first.example/", "alias": "taken" }))
        .await;

    let response = app
        .create(json!({ "url": "https://second.example/", "alias": "taken" }))
        .await;

    let problem = response.problem(StatusCode::CONFLICT);
    assert_eq!(problem["errors"][0]["pointer"], "#/alias");
    assert_eq!(
        app.visit("taken").await.location(),
        "https://first.example/"
    );
}

#[tokio::test]
async fn an_alias_is_taken_whoever_holds_it() {
    let app = TestApp::spawn().await;
    app.create_code(json!({ "url": "https://first.example/", "alias": "mine" }))
        .await;
    let other = app.new_key().await;

    let response = app
        .post_json(
            "/api/v1/links",
            Some(&other),
            json!({ "url": "https://x.example/", "alias": "mine" }),
        )
        .await;

    response.problem(StatusCode::CONFLICT);
}

#[tokio::test]
async fn invalid_urls_are_422_naming_the_url_field() {
    let app = TestApp::spawn().await;
    let too_long = format!("https://example.com/{}", "a".repeat(2048));
    for url in [
        "ftp://example.com/file",
        "javascript:alert(document.cookie)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "not a url",
        "/relative/path",
        "http://",
        "http://sho.test/abc",
        too_long.as_str(),
    ] {
        let response = app.create(json!({ "url": url })).await;
        let problem = response.invalid_field("url");
        assert!(
            problem["detail"].as_str().unwrap().starts_with("url: "),
            "{url}: {problem}"
        );
    }
}

#[tokio::test]
async fn script_urls_are_refused_with_a_message_that_says_why() {
    let app = TestApp::spawn().await;

    let problem = app
        .create(json!({ "url": "javascript:alert(1)" }))
        .await
        .invalid_field("url");

    assert_eq!(
        problem["errors"][0]["detail"],
        "the javascript: scheme is not allowed"
    );
}

#[tokio::test]
async fn invalid_aliases_expiry_and_limits_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let past = crate::helpers::rfc3339(app.clock.now() - std::time::Duration::from_secs(1));
    let cases = [
        (json!({ "url": "https://e.com/", "alias": "a/b" }), "alias"),
        (json!({ "url": "https://e.com/", "alias": "x" }), "alias"),
        (json!({ "url": "https://e.com/", "alias": "docs" }), "alias"),
        (
            json!({ "url": "https://e.com/", "expires_at": past }),
            "expires_at",
        ),
        (
            json!({ "url": "https://e.com/", "expires_at": "tomorrow" }),
            "expires_at",
        ),
        (
            json!({ "url": "https://e.com/", "max_visits": 0 }),
            "max_visits",
        ),
        (
            json!({ "url": "https://e.com/", "max_visits": -3 }),
            "max_visits",
        ),
        (
            json!({ "url": "https://e.com/", "max_visits": "ten" }),
            "max_visits",
        ),
        (json!({ "url": 42 }), "url"),
        (json!({}), "url"),
        (
            json!({ "url": "https://e.com/", "expire_at": past }),
            "expire_at",
        ),
    ];
    for (body, field) in cases {
        app.create(body).await.invalid_field(field);
    }
}

#[tokio::test]
async fn a_rejected_request_changes_nothing() {
    let app = TestApp::spawn().await;

    app.create(json!({ "url": "javascript:alert(1)", "alias": "keep-free" }))
        .await
        .invalid_field("url");

    app.visit("keep-free").await.problem(StatusCode::NOT_FOUND);
    let retry = app
        .create(json!({ "url": "https://example.com/", "alias": "keep-free" }))
        .await;
    assert_eq!(retry.status, StatusCode::CREATED);
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = TestApp::spawn().await;

    let response = app
        .send(json_request(
            Method::POST,
            "/api/v1/links",
            Some(&app.key),
            r#"{"url": "https://example.com/""#.into(),
        ))
        .await;

    response.problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_oversized_body_is_a_413_problem() {
    let app = TestApp::spawn().await;
    let body = json!({ "url": format!("https://example.com/{}", "a".repeat(100_000)) });

    let response = app.create(body).await;

    response.problem(StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_a_415_problem() {
    let app = TestApp::spawn().await;
    let request = Request::post("/api/v1/links")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.key))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"url": "https://example.com/"}"#))
        .unwrap();

    app.send(request)
        .await
        .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn creating_needs_a_known_api_key() {
    let app = TestApp::spawn().await;
    let body = json!({ "url": "https://example.com/" });

    let missing = app.post_json("/api/v1/links", None, body.clone()).await;
    missing.problem(StatusCode::UNAUTHORIZED);
    assert!(missing.headers.contains_key(header::WWW_AUTHENTICATE));

    let unknown_key = format!("sk_{}", "0".repeat(40));
    app.post_json("/api/v1/links", Some(&unknown_key), body.clone())
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.post_json("/api/v1/links", Some("not-a-key"), body)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_link_route_answers_an_unknown_key_with_one_401_whatever_the_body_holds() {
    let app = TestApp::spawn().await;
    let code = app
        .create_code(json!({ "url": "https://example.com/" }))
        .await;
    let unknown_key = format!("sk_{}", "0".repeat(40));
    let requests = [
        json_request(
            Method::POST,
            "/api/v1/links",
            Some(&unknown_key),
            json!({ "url": "https://example.com/" }).to_string(),
        ),
        json_request(
            Method::POST,
            "/api/v1/links",
            Some(&unknown_key),
            "{not json".into(),
        ),
        authorized(Method::GET, &format!("/api/v1/links/{code}"), &unknown_key),
        authorized(
            Method::DELETE,
            &format!("/api/v1/links/{code}"),
            &unknown_key,
        ),
    ];

    for request in requests {
        let route = format!("{} {}", request.method(), request.uri());
        let response = app.send(request).await;

        let problem = response.problem(StatusCode::UNAUTHORIZED);
        assert_eq!(problem["detail"], "The API key is not known.", "{route}");
        assert_eq!(
            response.headers[header::WWW_AUTHENTICATE],
            r#"Bearer realm="sdlab""#,
            "{route}"
        );
    }
    assert_eq!(app.visit(&code).await.status, StatusCode::FOUND);
}

#[tokio::test]
async fn only_the_creating_key_may_read_a_links_stats() {
    let app = TestApp::spawn().await;
    let code = app
        .create_code(json!({ "url": "https://example.com/" }))
        .await;
    let stranger = app.new_key().await;

    app.stats(&code, &stranger)
        .await
        .problem(StatusCode::FORBIDDEN);
    let unauthenticated = app
        .send(
            Request::get(format!("/api/v1/links/{code}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    unauthenticated.problem(StatusCode::UNAUTHORIZED);
    assert_eq!(app.stats(&code, &app.key).await.status, StatusCode::OK);
}

#[tokio::test]
async fn stats_of_an_unknown_code_are_404() {
    let app = TestApp::spawn().await;

    app.stats("nope123", &app.key)
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_code_that_is_not_utf8_is_a_400_problem_naming_it_on_every_route() {
    let app = TestApp::spawn().await;

    // `%FF` and `%C3%28` are percent escapes of bytes that are not UTF-8.
    for code in ["%FF", "ab%C3%28cd"] {
        let responses = [
            app.visit(code).await,
            app.stats(code, &app.key).await,
            app.delete(code, &app.key).await,
        ];
        for response in responses {
            let problem = response.problem(StatusCode::BAD_REQUEST);
            assert_eq!(problem["errors"][0]["parameter"], "code", "{problem}");
        }
        // A response to HEAD has no body, only the status and the headers of GET's.
        let head = app.head(code).await;
        assert_eq!(head.status, StatusCode::BAD_REQUEST);
        assert_eq!(head.header("content-type"), "application/problem+json");
    }
}

#[tokio::test]
async fn only_the_creating_key_may_delete_a_link() {
    let app = TestApp::spawn().await;
    let code = app
        .create_code(json!({ "url": "https://example.com/" }))
        .await;
    let stranger = app.new_key().await;

    app.delete(&code, &stranger)
        .await
        .problem(StatusCode::FORBIDDEN);

    assert_eq!(app.visit(&code).await.status, StatusCode::FOUND);
}

#[tokio::test]
async fn a_deleted_link_stops_redirecting_at_once_even_when_it_was_cached() {
    let app = TestApp::spawn().await;
    let code = app
        .create_code(json!({ "url": "https://example.com/" }))
        .await;
    assert_eq!(app.visit(&code).await.status, StatusCode::FOUND);

    let response = app.delete(&code, &app.key).await;

    assert_eq!(response.status, StatusCode::NO_CONTENT);
    app.visit(&code).await.problem(StatusCode::NOT_FOUND);
    app.stats(&code, &app.key)
        .await
        .problem(StatusCode::NOT_FOUND);
    app.delete(&code, &app.key)
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_deleted_alias_is_never_handed_out_again() {
    let app = TestApp::spawn().await;
    app.create_code(json!({ "url": "https://old.example/", "alias": "reused" }))
        .await;
    app.delete("reused", &app.key).await;

    let response = app
        .create(json!({ "url": "https://attacker.example/", "alias": "reused" }))
        .await;

    response.problem(StatusCode::CONFLICT);
}
