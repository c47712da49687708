//! Publishing, reading and deleting posts.

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn a_post_is_created_with_its_location_and_read_back_by_anyone() {
    let app = TestApp::spawn().await;
    let (ada, grace) = (app.user("ada").await, app.user("grace").await);

    let created = app.post_as(&ada, json!({"text": "Hello, world"})).await;

    assert_eq!(created.status, StatusCode::CREATED);
    let post = created.json();
    let id = post["id"].as_str().expect("ids are strings in JSON");
    assert_eq!(created.location(), format!("/v1/posts/{id}"));
    assert_eq!(post["author"], ada.id.as_str());
    assert_eq!(post["text"], "Hello, world");
    let read = app.get(created.location(), &grace).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json(), post);
}

#[tokio::test]
async fn text_of_1_to_280_characters_is_accepted_and_anything_else_is_422_naming_text() {
    let app = TestApp::spawn().await;
    let ada = app.user("ada").await;

    for accepted in [
        "x".repeat(280),
        "🦀".repeat(280),
        " ".to_owned(),
        "a\nb".to_owned(),
    ] {
        let response = app.post_as(&ada, json!({ "text": accepted })).await;
        assert_eq!(response.status, StatusCode::CREATED, "{accepted:?}");
        assert_eq!(response.json()["text"], accepted.as_str());
    }
    for refused in [
        json!({"text": "x".repeat(281)}),
        json!({"text": "🦀".repeat(281)}),
        json!({"text": ""}),
        json!({"text": "nul\u{0}"}),
        json!({"text": 42}),
        json!({}),
    ] {
        app.post_as(&ada, refused).await.invalid_field("text");
    }
    assert_eq!(app.feed_ids(&ada).await.len(), 4);
}

#[tokio::test]
async fn posting_as_someone_else_is_403_and_naming_yourself_is_allowed() {
    let app = TestApp::spawn().await;
    let (ada, grace) = (app.user("ada").await, app.user("grace").await);

    let as_grace = app
        .post_as(&ada, json!({"text": "I am Grace", "author": grace.id}))
        .await;
    let as_herself = app
        .post_as(&ada, json!({"text": "I am Ada", "author": ada.id}))
        .await;

    let body = as_grace.problem(StatusCode::FORBIDDEN);
    assert_eq!(body["type"], "tag:sdlab.dev,2026:not-yours");
    assert_eq!(as_herself.status, StatusCode::CREATED);
    assert!(app.feed_ids(&grace).await.is_empty());
    for malformed in [json!("grace"), json!(12), json!("")] {
        app.post_as(&ada, json!({"text": "x", "author": malformed}))
            .await
            .invalid_field("author");
    }
}

#[tokio::test]
async fn only_the_author_deletes_a_post_and_deleting_it_again_is_204() {
    let app = TestApp::spawn().await;
    let (ada, grace) = (app.user("ada").await, app.user("grace").await);
    let id = app.post(&ada, "soon gone").await;

    let by_grace = app.delete_post(&id, &grace).await;
    let by_ada = app.delete_post(&id, &ada).await;
    let again = app.delete_post(&id, &ada).await;

    by_grace.problem(StatusCode::FORBIDDEN);
    assert_eq!(by_ada.status, StatusCode::NO_CONTENT);
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    app.delete_post(&id, &grace)
        .await
        .problem(StatusCode::NOT_FOUND);
    app.get(&format!("/v1/posts/{id}"), &ada)
        .await
        .problem(StatusCode::NOT_FOUND);
    for unknown in ["9007199254740991", "nope"] {
        app.delete_post(unknown, &ada)
            .await
            .problem(StatusCode::NOT_FOUND);
        app.get(&format!("/v1/posts/{unknown}"), &ada)
            .await
            .problem(StatusCode::NOT_FOUND);
    }
}
