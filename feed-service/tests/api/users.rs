//! Signing up, tokens, profiles.

use axum::http::{Method, StatusCode, header};
use platform::auth::ApiKey;
use serde_json::json;

use crate::helpers::{TestApp, json_request, names_parameter};

#[tokio::test]
async fn a_new_user_gets_a_string_id_and_a_token_that_acts_as_them() {
    let app = TestApp::spawn().await;

    let response = app.sign_up("ada").await;

    assert_eq!(response.status, StatusCode::CREATED);
    let body = response.json();
    let id = body["id"].as_str().expect("ids are strings in JSON");
    assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
    assert_eq!(response.location(), format!("/v1/users/{id}"));
    assert_eq!(body["handle"], "ada");
    let token = body["token"].as_str().unwrap();
    let post = app
        .send(json_request(
            Method::POST,
            "/v1/posts",
            Some(token),
            json!({"text": "hello"}).to_string(),
        ))
        .await;
    assert_eq!(post.status, StatusCode::CREATED);
    assert_eq!(post.json()["author"], id);
    assert_eq!(post.json()["author_handle"], "ada");
}

#[tokio::test]
async fn a_taken_handle_is_409_naming_the_handle() {
    let app = TestApp::spawn().await;
    app.user("ada").await;

    let again = app.sign_up("ada").await;

    let body = again.problem(StatusCode::CONFLICT);
    assert_eq!(body["type"], "tag:sdlab.dev,2026:handle-taken");
    assert_eq!(body["errors"][0]["pointer"], "#/handle");
}

#[tokio::test]
async fn a_malformed_or_missing_handle_is_422_naming_it() {
    let app = TestApp::spawn().await;

    for handle in [
        json!("Ada"),
        json!(""),
        json!("ada lovelace"),
        json!("a".repeat(31)),
        json!(42),
    ] {
        let response = app
            .send(json_request(
                Method::POST,
                "/v1/users",
                None,
                json!({ "handle": handle }).to_string(),
            ))
            .await;
        response.invalid_field("handle");
    }
    app.send(json_request(Method::POST, "/v1/users", None, "{}".into()))
        .await
        .invalid_field("handle");
}

#[tokio::test]
async fn a_missing_malformed_or_unknown_token_is_401_with_a_challenge() {
    let app = TestApp::spawn().await;
    let ada = app.user("ada").await;
    let unknown = ApiKey::generate();

    for token in [None, Some("not-a-key"), Some(unknown.expose())] {
        for (method, path) in [
            (Method::GET, format!("/v1/users/{}", ada.id)),
            (Method::GET, format!("/v1/users/{}/feed", ada.id)),
            (Method::PUT, format!("/v1/users/{}/following/1", ada.id)),
            (Method::GET, "/v1/posts/1".to_owned()),
        ] {
            let response = app.call(method.clone(), &path, token).await;
            response.problem(StatusCode::UNAUTHORIZED);
            assert!(
                response.headers.contains_key(header::WWW_AUTHENTICATE),
                "{method} {path}"
            );
        }
        let post = app
            .send(json_request(
                Method::POST,
                "/v1/posts",
                token,
                json!({"text": "as whom?"}).to_string(),
            ))
            .await;
        post.problem(StatusCode::UNAUTHORIZED);
    }
    assert!(app.feed_ids(&ada).await.is_empty());
}

#[tokio::test]
async fn a_profile_is_public_with_its_counts_and_an_unknown_user_is_404() {
    let app = TestApp::spawn().await;
    let (ada, grace, linus) = (
        app.user("ada").await,
        app.user("grace").await,
        app.user("linus").await,
    );
    app.follow(&ada, &grace).await;
    app.follow(&ada, &linus).await;
    app.follow(&grace, &ada).await;

    let profile = app.get(&format!("/v1/users/{}", ada.id), &linus).await;

    assert_eq!(profile.status, StatusCode::OK);
    let body = profile.json();
    assert_eq!(body["id"], ada.id.as_str());
    assert_eq!(body["handle"], "ada");
    assert_eq!(body["following"], 2);
    assert_eq!(body["followers"], 1);
    assert!(body["created_at"].is_string());
    for unknown in ["9007199254740991", "0", "ada", "12abc"] {
        app.get(&format!("/v1/users/{unknown}"), &ada)
            .await
            .problem(StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_400_problem_naming_it_on_every_route() {
    let app = TestApp::spawn().await;
    let ada = app.user("ada").await;
    let grace = app.user("grace").await;
    let post = app.post(&grace, "hello").await;
    let (me, them) = (ada.id.as_str(), grace.id.as_str());

    // `%FF` is the percent escape of a byte that is not UTF-8.
    let bad = "%FF";
    let requests = [
        (Method::GET, format!("/v1/users/{bad}"), "id"),
        (Method::GET, format!("/v1/users/{bad}/feed"), "id"),
        (
            Method::PUT,
            format!("/v1/users/{bad}/following/{them}"),
            "id",
        ),
        (
            Method::PUT,
            format!("/v1/users/{me}/following/{bad}"),
            "target",
        ),
        (
            Method::DELETE,
            format!("/v1/users/{bad}/following/{them}"),
            "id",
        ),
        (
            Method::DELETE,
            format!("/v1/users/{me}/following/{bad}"),
            "target",
        ),
        (Method::GET, format!("/v1/posts/{post}{bad}"), "id"),
        (Method::DELETE, format!("/v1/posts/{bad}"), "id"),
    ];
    for (method, path, parameter) in requests {
        let response = app.call(method.clone(), &path, Some(&ada.token)).await;
        names_parameter(&response, StatusCode::BAD_REQUEST, parameter);
    }
}
