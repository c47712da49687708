//! The fault switches (`/admin/faults`, DESIGN.md "Break it"): each dependency switched
//! unreachable, what the API answers meanwhile, and, once the switch is undone, that the service
//! recovers with nothing lost and nothing done twice. Fan-out is waited for by its effect, never
//! by a fixed sleep.

use axum::http::{Method, StatusCode};
use feed_service::timeline::Strategy;
use serde_json::json;

use crate::helpers::{TestApp, reader, under, until};

fn unreachable() -> serde_json::Value {
    json!({ "unreachable": true })
}

fn healthy() -> serde_json::Value {
    json!({})
}

under!(the_switches_are_those_of_the_dependencies_the_strategy_uses: pull, push, hybrid);
async fn the_switches_are_those_of_the_dependencies_the_strategy_uses(strategy: Strategy) {
    let app = TestApp::under(strategy).await;

    let response = app
        .call(Method::GET, "/admin/faults", Some(app.admin.expose()))
        .await;

    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    let switches: Vec<String> = response
        .json()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut expected = vec!["database"];
    if strategy != Strategy::Pull {
        expected.extend(["fanout-worker", "redis"]);
    }
    assert_eq!(switches, expected);
}

under!(a_paused_fan_out_worker_holds_posts_until_undone_then_delivers_each_once: push, hybrid);
/// Grace is an ordinary author, the star a celebrity under hybrid (over a threshold of 3): while
/// the worker is paused, Grace's posts wait (in no follower's feed, counted as pending), and under
/// hybrid the star's post is in feeds at once all the same, since it needs no worker. After the
/// undo every post is in every follower's feed, and each timeline got each post once: the insert
/// count is exactly one per post and timeline.
async fn a_paused_fan_out_worker_holds_posts_until_undone_then_delivers_each_once(
    strategy: Strategy,
) {
    let app = TestApp::spawn_with(|settings| {
        settings.strategy = strategy;
        settings.timelines.celebrity_threshold = 3;
    })
    .await;
    let (grace, star) = (app.user("grace").await, app.user("star").await);
    let mut readers = Vec::new();
    for handle in ["ada", "bob", "carl"] {
        let reader = reader(&app, handle).await;
        app.follow(&reader, &grace).await;
        app.follow(&reader, &star).await;
        readers.push(reader);
    }
    app.follow(&reader(&app, "dan").await, &star).await;
    // A first post fanned out: the workers are in their group and idle before the pause.
    let before = app.post(&grace, "before the pause").await;
    app.until_fanned_out(1).await;

    app.fault("fanout-worker", unreachable()).await;
    let mut held = Vec::new();
    for n in 0..3 {
        held.push(app.post(&grace, &format!("while paused {n}")).await);
    }
    let celebrity = app.post(&star, "while paused, by a celebrity").await;
    until("a worker to take a post and hold it", || async {
        app.stats().paused() > 0
    })
    .await;

    assert_eq!(
        app.stats().pending(),
        4,
        "every post made while paused waits"
    );
    assert_eq!(app.stats().events(), 1, "nothing handled while paused");
    let meanwhile = match strategy {
        Strategy::Hybrid => vec![celebrity.clone(), before.clone()],
        _ => vec![before.clone()],
    };
    for reader in &readers {
        assert_eq!(app.feed_ids(reader).await, meanwhile, "{reader:?}");
    }

    app.fault("fanout-worker", healthy()).await;
    until("the fan-out to drain", || async {
        app.stats().pending() == 0
    })
    .await;

    let mut everything = vec![celebrity, held[2].clone(), held[1].clone(), held[0].clone()];
    everything.push(before);
    for reader in &readers {
        assert_eq!(app.feed_ids(reader).await, everything, "{reader:?}");
    }
    assert_eq!(app.stats().events(), 5);
    // Grace's four posts into four timelines each (hers and her three followers'); the star's
    // into five under push (theirs and four followers'), none under hybrid.
    let star_inserts = match strategy {
        Strategy::Hybrid => 0,
        _ => 5,
    };
    assert_eq!(app.stats().inserts(), 4 * 4 + star_inserts);
}

under!(with_the_database_unreachable_calls_are_503_and_cached_feeds_are_still_served: pull, push, hybrid);
/// Pull reads every feed from the database, so its reads fail with it; push and hybrid serve a
/// page their caches hold without it. Writes fail whole: a post refused meanwhile is nowhere
/// after the undo.
async fn with_the_database_unreachable_calls_are_503_and_cached_feeds_are_still_served(
    strategy: Strategy,
) {
    let app = TestApp::under(strategy).await;
    let (ada, grace) = (app.user("ada").await, app.user("grace").await);
    app.follow(&ada, &grace).await;
    let first = app.post(&grace, "before").await;
    if strategy != Strategy::Pull {
        app.until_fanned_out(1).await;
    }
    // Ada's first read: her timeline is rebuilt from everything there is, so it is whole, and a
    // read of it needs nothing past its tail from the database.
    let warm = app.page(&ada, "").await;
    assert_eq!(warm.0, std::slice::from_ref(&first));

    app.fault("database", unreachable()).await;

    let refused = app.post_as(&grace, json!({ "text": "while down" })).await;
    let problem = refused.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        problem["detail"].as_str().unwrap().contains("`database`"),
        "{problem}"
    );
    app.sign_up("newcomer")
        .await
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    let ready = app.call(Method::GET, "/readyz", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    match strategy {
        Strategy::Pull => {
            app.feed(&ada, "")
                .await
                .problem(StatusCode::SERVICE_UNAVAILABLE);
        }
        _ => assert_eq!(app.page(&ada, "").await, warm),
    }

    app.fault("database", healthy()).await;

    let ready = app.call(Method::GET, "/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{:?}", ready.body);
    let second = app.post(&grace, "after").await;
    let expected = [second, first];
    until("the post after the undo to reach the feed", || async {
        app.feed_ids(&ada).await.len() == expected.len()
    })
    .await;
    assert_eq!(app.feed_ids(&ada).await, expected);
    app.user("newcomer").await;
}

under!(with_redis_unreachable_feed_reads_are_503_and_posts_reach_timelines_after: push, hybrid);
/// Push and hybrid read feeds from the timelines in Redis, so reads fail with it, while posts
/// commit to the database. The worker holding the post's event retries it, never skipping it, and
/// after the undo the post is in the follower's feed, inserted once.
async fn with_redis_unreachable_feed_reads_are_503_and_posts_reach_timelines_after(
    strategy: Strategy,
) {
    let app = TestApp::under(strategy).await;
    let (ada, grace) = (reader(&app, "ada").await, app.user("grace").await);
    app.follow(&ada, &grace).await;
    let first = app.post(&grace, "before").await;
    app.until_fanned_out(1).await;

    app.fault("redis", unreachable()).await;

    let problem = app
        .feed(&ada, "")
        .await
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        problem["detail"].as_str().unwrap().contains("`redis`"),
        "{problem}"
    );
    let second = app.post(&grace, "while redis is down").await;
    assert_eq!(app.stats().pending(), 1);

    app.fault("redis", healthy()).await;

    until("the fan-out to drain", || async {
        app.stats().pending() == 0
    })
    .await;
    assert_eq!(app.feed_ids(&ada).await, [second, first]);
    // Each post into Grace's timeline and Ada's, once.
    assert_eq!(app.stats().inserts(), 2 * 2);
}
