//! Following and unfollowing: idempotent, and only for yourself.

use axum::http::{Method, StatusCode};

use crate::helpers::{TestApp, names_parameter};

#[tokio::test]
async fn following_twice_and_unfollowing_twice_each_answer_204_and_count_once() {
    let app = TestApp::spawn().await;
    let (ada, grace) = (app.user("ada").await, app.user("grace").await);
    let profile = format!("/v1/users/{}", ada.id);

    for _ in 0..2 {
        let response = app.following(Method::PUT, &ada, &ada.id, &grace.id).await;
        assert_eq!(response.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(app.get(&profile, &grace).await.json()["following"], 1);

    for _ in 0..2 {
        let response = app
            .following(Method::DELETE, &ada, &ada.id, &grace.id)
            .await;
        assert_eq!(response.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(app.get(&profile, &grace).await.json()["following"], 0);
}

#[tokio::test]
async fn following_or_unfollowing_for_someone_else_is_403_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (ada, grace, linus) = (
        app.user("ada").await,
        app.user("grace").await,
        app.user("linus").await,
    );
    app.follow(&grace, &linus).await;

    let follow = app.following(Method::PUT, &ada, &grace.id, &ada.id).await;
    let unfollow = app
        .following(Method::DELETE, &ada, &grace.id, &linus.id)
        .await;

    let body = follow.problem(StatusCode::FORBIDDEN);
    assert_eq!(body["type"], "tag:sdlab.dev,2026:not-yours");
    unfollow.problem(StatusCode::FORBIDDEN);
    let grace_profile = app
        .get(&format!("/v1/users/{}", grace.id), &grace)
        .await
        .json();
    assert_eq!(grace_profile["following"], 1);
    assert_eq!(grace_profile["followers"], 0);
}

#[tokio::test]
async fn following_an_unknown_user_is_404_and_following_yourself_is_422() {
    let app = TestApp::spawn().await;
    let ada = app.user("ada").await;

    for method in [Method::PUT, Method::DELETE] {
        app.following(method.clone(), &ada, &ada.id, "9007199254740991")
            .await
            .problem(StatusCode::NOT_FOUND);
        app.following(method.clone(), &ada, &ada.id, "grace")
            .await
            .problem(StatusCode::NOT_FOUND);
        app.following(method.clone(), &ada, "9007199254740991", &ada.id)
            .await
            .problem(StatusCode::NOT_FOUND);
        let yourself = app.following(method, &ada, &ada.id, &ada.id).await;
        names_parameter(&yourself, StatusCode::UNPROCESSABLE_ENTITY, "target");
    }
}
