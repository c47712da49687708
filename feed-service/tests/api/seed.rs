//! The seed tool's writers (`src/bin/feed-seed/seed/`), on the test's database: the rows agree
//! with the graph (counts, the counter column, tokens), and the service serves seeded users the
//! feeds the graph says, under every strategy.

/// The seed tool's graph and writers, compiled in as its binary compiles them: they are benchmark
/// code, outside the service's library. Their own tests (`tool::tests`) run here too.
#[path = "../../src/bin/feed-seed/seed/mod.rs"]
mod tool;

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use feed_service::{Settings, domain::UserId, store, timeline::Strategy};
use platform::{clock::Clock, db::Database};

use self::tool::{Graph, Manifest, Plan, SeedError, SeededUser};
use crate::helpers::{TestApp, User, send_to};

/// Followers above which the small graph's authors are celebrities (in hybrid).
const THRESHOLD: u64 = 30;

/// A small graph, at the test's clock, with a few celebrities above [`THRESHOLD`].
fn small_plan(app: &TestApp) -> Plan {
    Plan {
        users: 300,
        following: 8,
        posts: 3_000,
        sample: 12,
        celebrity_threshold: THRESHOLD,
        ..Plan::new(app.clock.now())
    }
}

async fn seeded(strategy: Strategy) -> (TestApp, Plan, Graph, Manifest) {
    let app = TestApp::spawn_with(|settings| {
        settings.strategy = strategy;
        settings.timelines.celebrity_threshold = THRESHOLD;
    })
    .await;
    let plan = small_plan(&app);
    let graph = Graph::generate(&plan);
    let written = tool::write(&app.backends.database, &plan, &graph, false)
        .await
        .expect("seeding");
    assert_eq!(
        (written.users, written.follows, written.posts),
        (300, graph.follows(), 3_000)
    );
    let manifest = Manifest::of(&plan, &graph);
    (app, plan, graph, manifest)
}

fn as_user(seeded: &SeededUser) -> User {
    User {
        id: seeded.id.clone(),
        token: seeded.token.clone(),
    }
}

/// `reader`'s whole feed as the graph says: their posts and their followees', newest first.
fn expected_feed(plan: &Plan, graph: &Graph, reader: &SeededUser) -> Vec<String> {
    let index = graph
        .users
        .iter()
        .position(|user| user.id.to_string() == reader.id)
        .unwrap();
    let mut authors: Vec<UserId> = graph.users[index]
        .following
        .iter()
        .map(|followee| graph.users[*followee as usize].id)
        .collect();
    authors.push(graph.users[index].id);
    let mut ids: Vec<_> = graph
        .posts(plan)
        .filter(|post| authors.contains(&post.author))
        .map(|post| post.id)
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn seeded_profiles_counters_and_tokens_agree_with_the_graph() {
    let (app, _plan, graph, manifest) = seeded(Strategy::Pull).await;
    let store = store::for_database(&app.backends.database);
    assert_eq!(manifest.top.followers, 299);

    for user in manifest.celebrities.iter().chain(&manifest.sample) {
        // The token is the user's: the profile and the feed answer it.
        let response = app
            .get(&format!("/v1/users/{}", user.id), &as_user(user))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        let profile = response.json();
        assert_eq!(profile["handle"], user.handle.as_str());
        assert_eq!(profile["followers"], user.followers);
        assert_eq!(profile["following"], user.following as u64);
        let id = UserId::parse(&user.id).unwrap();
        assert_eq!(store.follower_count(id).await.unwrap(), user.followers);
    }
    let followers: u64 = graph.users.iter().map(|user| user.followers).sum();
    assert_eq!(followers, graph.follows());
}

#[tokio::test]
async fn seeding_a_database_that_holds_users_is_refused_unless_reset() {
    let (app, plan, graph, manifest) = seeded(Strategy::Pull).await;
    let reader = &manifest.sample[0];
    let before = app.feed_ids(&as_user(reader)).await;

    let again = tool::write(&app.backends.database, &plan, &graph, false).await;
    assert!(matches!(again, Err(SeedError::NotEmpty(300))), "{again:?}");

    let other = Plan {
        seed: 2,
        ..plan.clone()
    };
    let reseeded = tool::write(
        &app.backends.database,
        &other,
        &Graph::generate(&other),
        true,
    )
    .await
    .expect("reseeding");
    assert_eq!(reseeded.users, 300);
    // The same users (ids and handles follow the plan's size and time), other tokens. A running
    // service holds the accounts it has seen for minutes (src/service.rs), so a reseed is followed
    // by a restart, as loadtests/bench-feed.sh does: the service started after it refuses the old
    // token.
    let restarted = app.another_instance(Settings::for_tests()).await;
    let stale = send_to(
        &restarted,
        Request::get(format!("/v1/users/{}/feed", reader.id))
            .header(header::AUTHORIZATION, format!("Bearer {}", reader.token))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    let fresh = Manifest::of(&other, &Graph::generate(&other));
    let (ids, _) = app.page(&as_user(&fresh.sample[0]), "?limit=100").await;
    assert_ne!(ids, before);
}

async fn seeded_feeds_are_what_the_graph_says(strategy: Strategy) {
    let (app, plan, graph, manifest) = seeded(strategy).await;

    for reader in manifest.sample.iter().take(6).chain([&manifest.top]) {
        let expected = expected_feed(&plan, &graph, reader);
        // The first three pages of 20 (fewer for a reader whose feed is shorter).
        let mut query = String::new();
        for page in expected.chunks(20).take(3) {
            let (ids, cursor) = app.page(&as_user(reader), &query).await;
            assert_eq!(ids, page, "{strategy:?}, {}", reader.handle);
            let Some(cursor) = cursor else { break };
            query = format!("?cursor={cursor}");
        }
    }
}

#[tokio::test]
async fn seeded_feeds_are_what_the_graph_says_under_pull() {
    seeded_feeds_are_what_the_graph_says(Strategy::Pull).await;
}

#[tokio::test]
async fn seeded_feeds_are_what_the_graph_says_under_push() {
    seeded_feeds_are_what_the_graph_says(Strategy::Push).await;
}

#[tokio::test]
async fn seeded_feeds_are_what_the_graph_says_under_hybrid() {
    seeded_feeds_are_what_the_graph_says(Strategy::Hybrid).await;
}

#[tokio::test]
async fn a_reset_forgets_the_cached_timelines_and_posts_under_the_namespace_only() {
    let Some(url) = platform::testing::redis_url() else {
        return;
    };
    let (namespace, other) = (
        platform::testing::unique_namespace(),
        platform::testing::unique_namespace(),
    );
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    for key in ["timeline:1", "timeline:2", "post:3"] {
        let () = redis::cmd("SET")
            .arg(format!("{namespace}{key}"))
            .arg(1)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    let () = redis::cmd("SET")
        .arg(format!("{other}timeline:1"))
        .arg(1)
        .query_async(&mut redis)
        .await
        .unwrap();

    assert_eq!(tool::forget_cached(&url, &namespace).await.unwrap(), 3);

    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{namespace}*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let kept: i64 = redis::cmd("UNLINK")
        .arg(format!("{other}timeline:1"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(kept, 1);
}

/// The seeded tables' constraints and indexes, as the catalog defines them.
async fn schema(database: &Database) -> Vec<(String, String)> {
    match database {
        Database::Postgres(pool) => sqlx::query_as(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid = ANY(ARRAY['users', 'follows', 'posts']::regclass[]) \
             UNION ALL \
             SELECT indexname::text, indexdef FROM pg_indexes \
             WHERE schemaname = current_schema() AND tablename IN ('users', 'follows', 'posts') \
             ORDER BY 1, 2",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Database::Sqlite(pool) => sqlx::query_as(
            "SELECT name, coalesce(sql, '') FROM sqlite_master \
             WHERE tbl_name IN ('users', 'follows', 'posts') ORDER BY name",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    }
}

#[tokio::test]
async fn the_seed_leaves_every_constraint_and_index_as_the_migrations_made_them() {
    let app = TestApp::spawn().await;
    let before = schema(&app.backends.database).await;
    let plan = small_plan(&app);

    tool::write(
        &app.backends.database,
        &plan,
        &Graph::generate(&plan),
        false,
    )
    .await
    .unwrap();

    assert_eq!(schema(&app.backends.database).await, before);
    assert!(before.iter().any(|(name, _)| name == "follows_by_followee"));
    // Foreign keys are enforced again: a follow of no one is refused.
    let dangling = match &app.backends.database {
        Database::Postgres(pool) => sqlx::query(
            "INSERT INTO follows (follower_id, followee_id, created_at) \
             SELECT id, 1, created_at FROM users LIMIT 1",
        )
        .execute(pool)
        .await
        .map(drop),
        Database::Sqlite(pool) => sqlx::query(
            "INSERT INTO follows (follower_id, followee_id, created_at) \
             SELECT id, 1, created_at FROM users LIMIT 1",
        )
        .execute(pool)
        .await
        .map(drop),
    };
    assert!(
        dangling.is_err(),
        "a follow of user 1, who does not exist, was stored"
    );
}
