//! Home feeds: what is in them, in what order, a page at a time, and who may read them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::http::{Method, StatusCode};
use serde_json::json;
use tokio::sync::watch;

use crate::helpers::{TestApp, names_parameter, post_request, send_to};

/// How long a test waits for something that should happen at once before failing.
const GUARD: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_feed_is_newest_first_with_your_own_posts_and_only_those_you_follow() {
    let app = TestApp::spawn().await;
    let (reader, alice, bob, stranger) = (
        app.user("reader").await,
        app.user("alice").await,
        app.user("bob").await,
        app.user("stranger").await,
    );
    app.follow(&reader, &alice).await;
    app.follow(&reader, &bob).await;

    let a1 = app.post(&alice, "a1").await;
    let r1 = app.post(&reader, "r1").await;
    app.post(&stranger, "not followed").await;
    let b1 = app.post(&bob, "b1").await;
    let a2 = app.post(&alice, "a2").await;

    assert_eq!(app.feed_ids(&reader).await, [a2, b1, r1, a1]);
}

#[tokio::test]
async fn a_page_holds_twenty_posts_unless_asked_and_the_last_page_has_no_cursor() {
    let app = TestApp::spawn().await;
    let ada = app.user("ada").await;
    let mut posted = Vec::new();
    for i in 0..21 {
        posted.push(app.post(&ada, &format!("post {i}")).await);
    }
    posted.reverse();

    let (first, cursor) = app.page(&ada, "").await;
    let cursor = cursor.expect("a next page");
    let (second, end) = app.page(&ada, &format!("?cursor={cursor}")).await;
    let (exact, none) = app.page(&ada, "?limit=21").await;

    assert_eq!(first, posted[..20]);
    assert_eq!(second, posted[20..]);
    assert_eq!(end, None);
    assert_eq!(exact, posted);
    assert_eq!(none, None, "a page that holds the rest has no next page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_neither_repeat_nor_skip_a_post_while_posts_arrive_concurrently() {
    let app = TestApp::spawn().await;
    let (reader, alice, bob) = (
        app.user("reader").await,
        app.user("alice").await,
        app.user("bob").await,
    );
    app.follow(&reader, &alice).await;
    app.follow(&reader, &bob).await;
    let mut before = Vec::new();
    for i in 0..12 {
        let author = [&alice, &bob, &reader][i % 3];
        before.push(app.post(author, &format!("before {i}")).await);
    }
    before.reverse();

    let (mut seen, mut cursor) = app.page(&reader, "?limit=5").await;
    // From the first page on, alice and bob keep posting while the reader pages down.
    let stop = Arc::new(AtomicBool::new(false));
    let (posted, mut posted_count) = watch::channel(0_usize);
    let poster = tokio::spawn({
        let (router, stop) = (app.router.clone(), stop.clone());
        let authors = [alice.clone(), bob.clone()];
        async move {
            let mut count = 0;
            while !stop.load(Ordering::SeqCst) {
                let author = &authors[count % 2];
                let text = json!({ "text": format!("meanwhile {count}") });
                let response = send_to(&router, post_request(author, text)).await;
                assert_eq!(response.status, StatusCode::CREATED);
                count += 1;
                posted.send_replace(count);
            }
            count
        }
    });
    while let Some(at) = cursor {
        // At least one new post between any two pages, and more arriving during each read.
        tokio::time::timeout(GUARD, posted_count.changed())
            .await
            .expect("the poster posts")
            .unwrap();
        let (ids, next) = app.page(&reader, &format!("?limit=5&cursor={at}")).await;
        seen.extend(ids);
        cursor = next;
    }
    stop.store(true, Ordering::SeqCst);
    let meanwhile = poster.await.unwrap();

    assert!(meanwhile >= 2, "only {meanwhile} posts arrived meanwhile");
    assert_eq!(
        seen, before,
        "each earlier post once, newest first, none new"
    );
    let (top, _) = app.page(&reader, "?limit=1").await;
    assert!(
        !before.contains(&top[0]),
        "a read from the top shows new posts"
    );
}

#[tokio::test]
async fn a_bad_limit_a_bad_cursor_or_an_unknown_parameter_is_400_naming_it() {
    let app = TestApp::spawn().await;
    let ada = app.user("ada").await;
    let post = app.post(&ada, "hello").await;
    let post_id_as_cursor = format!("?cursor={post}");

    let cases = [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=ten", "limit"),
        ("?limit=-1", "limit"),
        ("?limit=", "limit"),
        ("?limit=99999999999999999999", "limit"),
        ("?limit=5&limit=6", "limit"),
        ("?cursor=not-a-cursor!", "cursor"),
        ("?cursor=", "cursor"),
        ("?cursor=AAAAAAAAAAA", "cursor"),
        (post_id_as_cursor.as_str(), "cursor"),
        ("?page=2", "page"),
        ("?limit=5&offset=10", "offset"),
    ];
    for (query, parameter) in cases {
        let response = app.feed(&ada, query).await;
        names_parameter(&response, StatusCode::BAD_REQUEST, parameter);
    }
}

#[tokio::test]
async fn another_users_feed_is_403_and_an_unknown_users_is_404() {
    let app = TestApp::spawn().await;
    let (ada, grace) = (app.user("ada").await, app.user("grace").await);
    app.post(&grace, "mine alone").await;

    let others = app.get(&format!("/v1/users/{}/feed", grace.id), &ada).await;

    let body = others.problem(StatusCode::FORBIDDEN);
    assert_eq!(body["type"], "tag:sdlab.dev,2026:not-yours");
    for unknown in ["9007199254740991", "grace"] {
        app.get(&format!("/v1/users/{unknown}/feed"), &ada)
            .await
            .problem(StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn unfollowing_removes_their_posts_from_your_feed_and_following_again_restores_them() {
    let app = TestApp::spawn().await;
    let (reader, alice) = (app.user("reader").await, app.user("alice").await);
    app.follow(&reader, &alice).await;
    let a1 = app.post(&alice, "a1").await;
    let r1 = app.post(&reader, "r1").await;
    assert_eq!(app.feed_ids(&reader).await, [r1.clone(), a1.clone()]);

    let unfollowed = app
        .following(Method::DELETE, &reader, &reader.id, &alice.id)
        .await;

    assert_eq!(unfollowed.status, StatusCode::NO_CONTENT);
    assert_eq!(app.feed_ids(&reader).await, [r1.as_str()]);
    app.follow(&reader, &alice).await;
    assert_eq!(app.feed_ids(&reader).await, [r1, a1]);
}

#[tokio::test]
async fn a_deleted_post_leaves_every_feed() {
    let app = TestApp::spawn().await;
    let (ada, grace, linus) = (
        app.user("ada").await,
        app.user("grace").await,
        app.user("linus").await,
    );
    app.follow(&grace, &ada).await;
    app.follow(&linus, &ada).await;
    let kept = app.post(&ada, "kept").await;
    let deleted = app.post(&ada, "deleted").await;
    for reader in [&ada, &grace, &linus] {
        assert_eq!(app.feed_ids(reader).await, [deleted.clone(), kept.clone()]);
    }

    let response = app.delete_post(&deleted, &ada).await;

    assert_eq!(response.status, StatusCode::NO_CONTENT);
    for reader in [&ada, &grace, &linus] {
        assert_eq!(app.feed_ids(reader).await, [kept.as_str()]);
    }
}
