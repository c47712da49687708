//! The feed under each strategy: what fan-out on write and the hybrid must keep from pull
//! (ordering, stable cursors, deletes, follows), what they add (the cap, celebrities, inactive
//! readers, idempotent fan-out), and that all three serve the same pages.
//!
//! Each behaviour is one `async fn` taking the strategy, run once per strategy it applies to by
//! `under!` (`helpers.rs`): the test `follower_feeds_are_newest_first::push` is
//! `follower_feeds_are_newest_first(Strategy::Push)`. Fan-out is waited for by its effect (a
//! timeline holding a post, a count of events handled), never by a fixed sleep.

use std::{collections::HashSet, slice};

use axum::http::Method;
use feed_service::{
    Settings,
    domain::{PostId, UserId},
    fanout::PostEvent,
    timeline::Strategy,
};
use platform::{clock::Clock, topic::Message};

use crate::helpers::{TestApp, User, reader, under};

under!(follower_feeds_are_newest_first: pull, push, hybrid);
async fn follower_feeds_are_newest_first(strategy: Strategy) {
    let app = TestApp::under(strategy).await;
    let (ada, grace, alan) = (
        reader(&app, "ada").await,
        app.user("grace").await,
        app.user("alan").await,
    );
    app.follow(&ada, &grace).await;
    app.follow(&ada, &alan).await;

    let mut posted = Vec::new();
    for round in 0..3 {
        posted.push(app.post(&grace, &format!("grace {round}")).await);
        posted.push(app.post(&alan, &format!("alan {round}")).await);
    }
    if strategy != Strategy::Pull {
        app.until_timeline(&ada, |ids| ids.len() == posted.len())
            .await;
    }

    posted.reverse();
    assert_eq!(app.feed_ids(&ada).await, posted);
}

under!(a_timeline_keeps_the_newest_posts_up_to_the_cap_and_the_feed_goes_on_below_it: push, hybrid);
async fn a_timeline_keeps_the_newest_posts_up_to_the_cap_and_the_feed_goes_on_below_it(
    strategy: Strategy,
) {
    let app = TestApp::spawn_with(|settings| {
        settings.strategy = strategy;
        settings.timelines.cap = 5;
    })
    .await;
    let (ada, grace) = (reader(&app, "ada").await, app.user("grace").await);
    app.follow(&ada, &grace).await;

    let mut posted = Vec::new();
    for n in 0..8 {
        posted.push(app.post(&grace, &format!("post {n}")).await);
    }
    app.until_fanned_out(8).await;
    posted.reverse();

    assert_eq!(app.timeline(&ada).await.unwrap(), posted[..5]);
    let mut paged = Vec::new();
    let mut query = "?limit=3".to_owned();
    loop {
        let (ids, next) = app.page(&ada, &query).await;
        paged.extend(ids);
        match next {
            Some(cursor) => query = format!("?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, posted);
}

under!(a_post_reaches_every_follower_when_they_fill_several_batches: push, hybrid);
async fn a_post_reaches_every_follower_when_they_fill_several_batches(strategy: Strategy) {
    let app = TestApp::spawn_with(|settings| {
        settings.strategy = strategy;
        settings.fanout.batch = 2;
    })
    .await;
    let grace = app.user("grace").await;
    let mut followers = Vec::new();
    for n in 0..5 {
        let follower = reader(&app, &format!("reader{n}")).await;
        app.follow(&follower, &grace).await;
        followers.push(follower);
    }

    let post = app.post(&grace, "to all five").await;
    app.until_fanned_out(1).await;

    for follower in &followers {
        assert_eq!(
            app.timeline(follower).await.unwrap(),
            slice::from_ref(&post)
        );
    }
    assert_eq!(
        app.stats().inserts(),
        6,
        "five followers and grace, once each"
    );
}

under!(pages_stay_stable_while_new_posts_arrive: pull, push, hybrid);
async fn pages_stay_stable_while_new_posts_arrive(strategy: Strategy) {
    let app = TestApp::under(strategy).await;
    let (ada, grace) = (reader(&app, "ada").await, app.user("grace").await);
    app.follow(&ada, &grace).await;
    let mut before = Vec::new();
    for n in 0..9 {
        before.push(app.post(&grace, &format!("before {n}")).await);
    }
    if strategy != Strategy::Pull {
        app.until_fanned_out(9).await;
    }
    before.reverse();

    let (first, cursor) = app.page(&ada, "?limit=4").await;
    let posting = async {
        for n in 0..5 {
            app.post(&grace, &format!("during {n}")).await;
        }
    };
    let reading = async {
        let mut rest = Vec::new();
        let mut cursor = cursor;
        while let Some(at) = cursor {
            let (ids, next) = app.page(&ada, &format!("?limit=4&cursor={at}")).await;
            rest.extend(ids);
            cursor = next;
        }
        rest
    };
    let ((), rest) = tokio::join!(posting, reading);

    let served: Vec<String> = first.into_iter().chain(rest).collect();
    assert_eq!(served, before, "a page repeated or skipped a post");
}

under!(a_celebrity_post_is_in_feeds_at_once_and_costs_no_fan_out_writes: hybrid);
async fn a_celebrity_post_is_in_feeds_at_once_and_costs_no_fan_out_writes(strategy: Strategy) {
    let app = TestApp::spawn_with(|settings| {
        settings.strategy = strategy;
        settings.timelines.celebrity_threshold = 2;
    })
    .await;
    let star = app.user("star").await;
    let mut fans = Vec::new();
    for n in 0..3 {
        let fan = reader(&app, &format!("fan{n}")).await;
        app.follow(&fan, &star).await;
        fans.push(fan);
    }

    let post = app.post(&star, "hello, fans").await;

    for fan in &fans {
        assert_eq!(app.feed_ids(fan).await, slice::from_ref(&post));
    }
    app.until_fanned_out(1).await;
    assert_eq!(app.stats().inserts(), 0);
    for fan in &fans {
        assert_eq!(app.timeline(fan).await.unwrap(), Vec::<String>::new());
    }
}

under!(a_celebrity_post_is_in_feeds_before_any_worker_handles_it: hybrid);
/// The post request itself puts a celebrity's post in their recent posts (knowing from its own
/// insert that the author is one), so the next read has it with no worker running; the event's
/// worker only does it again.
async fn a_celebrity_post_is_in_feeds_before_any_worker_handles_it(strategy: Strategy) {
    let app = TestApp::without_fanout(|settings| {
        settings.strategy = strategy;
        settings.timelines.celebrity_threshold = 1;
    })
    .await;
    let star = app.user("star").await;
    let (ada, bob) = (reader(&app, "ada").await, app.user("bob").await);
    // Ada's follow makes the star a celebrity, so it backfills nothing: her timeline stays whole
    // and her reads need no database query past it, which would find the posts by itself.
    app.follow(&bob, &star).await;
    app.follow(&ada, &star).await;
    let older = app.post(&star, "before the read").await;
    // This read builds the celebrity's recent posts from the database.
    assert_eq!(app.feed_ids(&ada).await, slice::from_ref(&older));

    let newer = app.post(&star, "after it").await;

    assert_eq!(app.feed_ids(&ada).await, [newer, older]);
}

under!(following_backfills_posts_above_the_tail_and_unfollowing_removes_them: push, hybrid);
async fn following_backfills_posts_above_the_tail_and_unfollowing_removes_them(strategy: Strategy) {
    let app = TestApp::under(strategy).await;
    let (ada, grace) = (app.user("ada").await, app.user("grace").await);
    let old = app.post(&grace, "older than ada's timeline").await;
    let ada_first = app.post(&ada, "ada's first").await;
    app.feed_ids(&ada).await;
    let recent = app.post(&grace, "newer than ada's tail").await;
    app.until_fanned_out(3).await;

    app.follow(&ada, &grace).await;

    assert_eq!(
        app.timeline(&ada).await.unwrap(),
        [recent.clone(), ada_first.clone()],
        "backfilled above the tail, and only there"
    );
    assert_eq!(
        app.feed_ids(&ada).await,
        [recent.clone(), ada_first.clone(), old.clone()],
        "below the tail the feed goes on from the database"
    );

    let response = app
        .following(Method::DELETE, &ada, &ada.id, &grace.id)
        .await;
    assert!(response.status.is_success(), "{:?}", response.body);

    assert_eq!(
        app.timeline(&ada).await.unwrap(),
        slice::from_ref(&ada_first)
    );
    assert_eq!(app.feed_ids(&ada).await, [ada_first]);
}

under!(a_deleted_post_leaves_feeds_at_once_and_timelines_after: push, hybrid);
async fn a_deleted_post_leaves_feeds_at_once_and_timelines_after(strategy: Strategy) {
    let app = TestApp::under(strategy).await;
    let (ada, grace) = (reader(&app, "ada").await, reader(&app, "grace").await);
    app.follow(&ada, &grace).await;
    let kept = app.post(&grace, "kept").await;
    let deleted = app.post(&grace, "deleted").await;
    app.until_timeline(&ada, |ids| ids.contains(&deleted)).await;

    let response = app.delete_post(&deleted, &grace).await;
    assert!(response.status.is_success(), "{:?}", response.body);

    assert_eq!(app.feed_ids(&ada).await, slice::from_ref(&kept));
    app.until_timeline(&ada, |ids| !ids.contains(&deleted))
        .await;
    app.until_timeline(&grace, |ids| ids == [kept.clone()])
        .await;
}

under!(an_inactive_reader_is_skipped_by_fan_out_and_rebuilt_on_their_next_read: push, hybrid);
async fn an_inactive_reader_is_skipped_by_fan_out_and_rebuilt_on_their_next_read(
    strategy: Strategy,
) {
    let app = TestApp::under(strategy).await;
    let (ada, grace) = (reader(&app, "ada").await, app.user("grace").await);
    app.follow(&ada, &grace).await;
    let window = Settings::for_tests().timelines.active_window;
    app.clock
        .advance(window + std::time::Duration::from_secs(1));

    let post = app.post(&grace, "while ada was away").await;
    app.until_fanned_out(1).await;

    assert_eq!(app.stats().inserts(), 1, "only grace's own timeline");
    // In process, ada's timeline expired with the window (its time to live); Redis, whose clock
    // the test cannot move, still has it, without the post.
    let stale = app.timeline(&ada).await;
    assert!(stale.as_ref().is_none_or(Vec::is_empty), "{stale:?}");
    assert_eq!(app.feed_ids(&ada).await, slice::from_ref(&post));
    assert_eq!(app.timeline(&ada).await.unwrap(), [post]);
}

under!(a_read_renews_the_timeline_for_another_active_window: push, hybrid);
async fn a_read_renews_the_timeline_for_another_active_window(strategy: Strategy) {
    let app = TestApp::under(strategy).await;
    let (ada, grace) = (reader(&app, "ada").await, app.user("grace").await);
    app.follow(&ada, &grace).await;
    let window = Settings::for_tests().timelines.active_window;
    let hour = std::time::Duration::from_secs(3_600);

    // Ada reads again two hours before her timeline would expire, then a post arrives after
    // the first window has passed: her timeline is still there (renewed), and fan-out, which
    // counts her active, keeps it up to date.
    app.clock.advance(window - 2 * hour);
    app.feed_ids(&ada).await;
    app.clock.advance(3 * hour);
    let post = app.post(&grace, "after the first window").await;
    app.until_fanned_out(1).await;

    assert_eq!(app.stats().inserts(), 2, "grace's timeline and ada's");
    assert_eq!(app.timeline(&ada).await.unwrap(), slice::from_ref(&post));
}

under!(a_cached_read_needs_no_database: push, hybrid);
/// A read of a page the caches hold costs no database round trip: the token's account and the
/// reader's last read (within the hour) are held in process, the ids in the timelines cache
/// (whole: rebuilt from fewer posts than the cap, so the read knows nothing is past its tail),
/// the posts in the post cache, and in hybrid the reader's celebrities and their recent posts in
/// theirs. So once a first read has warmed them, the same read is served with the database gone.
/// (Pull is the database.)
async fn a_cached_read_needs_no_database(strategy: Strategy) {
    let app = TestApp::spawn_with(|settings| {
        settings.strategy = strategy;
        settings.timelines.celebrity_threshold = 1;
    })
    .await;
    let (ada, bob) = (app.user("ada").await, app.user("bob").await);
    let (star, carl) = (app.user("star").await, app.user("carl").await);
    app.follow(&ada, &star).await;
    app.follow(&bob, &star).await;
    app.follow(&ada, &carl).await;
    let older = app.post(&star, "older, by a celebrity under hybrid").await;
    let between = app.post(&carl, "between, by an ordinary author").await;
    let newer = app.post(&star, "newer, by a celebrity under hybrid").await;
    app.until_fanned_out(3).await;
    let warm = app.page(&ada, "").await;
    assert_eq!(warm.0, [newer, between, older]);

    app.backends.database.close().await;

    assert_eq!(app.page(&ada, "").await, warm);
}

under!(stale_ids_in_a_timeline_do_not_cost_a_celebrity_post_its_place: hybrid);
/// A read hydrates only the celebrities' posts a full timeline slice leaves room for, and the
/// rest only if ids above them turn out to be gone. Here the two newest ids in the reader's
/// timeline name no post (as posts deleted since they were cached would), so the celebrity's
/// post, below the slice the read takes, belongs on the page. (A page of 3 takes a slice of 4:
/// the service asks for one more post than the page to know whether another page follows.)
async fn stale_ids_in_a_timeline_do_not_cost_a_celebrity_post_its_place(strategy: Strategy) {
    let app = TestApp::spawn_with(|settings| {
        settings.strategy = strategy;
        settings.timelines.celebrity_threshold = 1;
    })
    .await;
    let ada = reader(&app, "ada").await;
    let (bob, star, grace) = (
        app.user("bob").await,
        app.user("star").await,
        app.user("grace").await,
    );
    app.follow(&ada, &star).await;
    app.follow(&bob, &star).await;
    app.follow(&ada, &grace).await;
    let first = app.post(&grace, "first").await;
    let celebrity = app.post(&star, "by a celebrity").await;
    let second = app.post(&grace, "second").await;
    let third = app.post(&grace, "third").await;
    app.until_timeline(&ada, |ids| ids.len() == 3).await;
    let gone = [
        feed_service::domain::MAX_ID,
        feed_service::domain::MAX_ID - 1,
    ];
    for id in gone {
        app.app
            .timelines()
            .insert(&[UserId::parse(&ada.id).unwrap()], PostId::new(id).unwrap())
            .await
            .unwrap();
    }
    assert_eq!(app.timeline(&ada).await.unwrap().len(), 5);

    assert_eq!(
        app.page(&ada, "?limit=3").await.0,
        [third, second, celebrity],
        "not {first}, which is older than the celebrity's post"
    );
}

under!(a_follow_or_a_crossing_of_the_threshold_reaches_the_next_read: hybrid);
/// The celebrities a reader follows are cached, and each change reaches the reader's next read:
/// their own follow of a celebrity, and an author they follow becoming one. A page of one makes
/// the newest post decide the page, so a stale list would show the reader's own post instead.
async fn a_follow_or_a_crossing_of_the_threshold_reaches_the_next_read(strategy: Strategy) {
    let app = TestApp::spawn_with(|settings| {
        settings.strategy = strategy;
        settings.timelines.celebrity_threshold = 2;
    })
    .await;
    let newest = async |reader: &User| app.page(reader, "?limit=1").await.0;
    let ada = reader(&app, "ada").await;
    let (star, riser) = (app.user("star").await, app.user("riser").await);
    let mut fans = Vec::new();
    for n in 0..3 {
        let fan = app.user(&format!("fan{n}")).await;
        app.follow(&fan, &star).await;
        fans.push(fan);
    }
    app.follow(&ada, &riser).await;
    let own = app.post(&ada, "ada's own").await;
    app.until_timeline(&ada, |ids| ids == [own.clone()]).await;
    assert_eq!(
        newest(&ada).await,
        slice::from_ref(&own),
        "the list is cached now"
    );

    // Ada follows a celebrity.
    let starred = app
        .post(&star, "from a celebrity ada does not follow yet")
        .await;
    assert_eq!(newest(&ada).await, slice::from_ref(&own));
    app.follow(&ada, &star).await;
    assert_eq!(newest(&ada).await, slice::from_ref(&starred));

    // An author ada follows crosses the threshold: two more followers make three.
    app.follow(&fans[0], &riser).await;
    app.follow(&fans[1], &riser).await;
    let risen = app.post(&riser, "riser's first post as a celebrity").await;
    assert_eq!(newest(&ada).await, slice::from_ref(&risen), "at once");
    app.until_fanned_out(3).await;
    assert_eq!(
        app.stats().inserts(),
        1,
        "ada's own post, in her own timeline"
    );

    // A celebrity's deleted post leaves the feed at once.
    let response = app.delete_post(&risen, &riser).await;
    assert!(response.status.is_success(), "{:?}", response.body);
    assert_eq!(newest(&ada).await, slice::from_ref(&starred));
}

under!(an_author_falling_back_below_the_threshold_keeps_their_posts_in_feeds: hybrid);
/// A celebrity's posts are in no timeline, and reads merge them in only while the author is
/// one. The unfollow that takes them back down to the threshold announces it, and the workers
/// drop the timelines of the author and their followers, so the next reads rebuild them from the
/// database, posts made as a celebrity included.
async fn an_author_falling_back_below_the_threshold_keeps_their_posts_in_feeds(strategy: Strategy) {
    let app = TestApp::spawn_with(|settings| {
        settings.strategy = strategy;
        settings.timelines.celebrity_threshold = 2;
    })
    .await;
    let star = reader(&app, "star").await;
    let (ada, bob) = (reader(&app, "ada").await, reader(&app, "bob").await);
    let carl = app.user("carl").await;
    for fan in [&ada, &bob, &carl] {
        app.follow(fan, &star).await;
    }
    let post = app.post(&star, "posted as a celebrity").await;
    app.until_fanned_out(1).await;
    assert_eq!(
        app.stats().inserts(),
        0,
        "a celebrity's post is fanned out to no one"
    );
    assert_eq!(app.feed_ids(&ada).await, slice::from_ref(&post));

    let response = app
        .following(Method::DELETE, &carl, &carl.id, &star.id)
        .await;
    assert!(response.status.is_success(), "{:?}", response.body);
    app.until_fanned_out(2).await;

    for reader in [&ada, &bob, &star] {
        assert_eq!(app.feed_ids(reader).await, slice::from_ref(&post));
    }
}

under!(a_post_event_delivered_twice_changes_no_timeline: push, hybrid);
async fn a_post_event_delivered_twice_changes_no_timeline(strategy: Strategy) {
    let app = TestApp::under(strategy).await;
    let (ada, grace) = (reader(&app, "ada").await, app.user("grace").await);
    app.follow(&ada, &grace).await;
    let post = app.post(&grace, "once").await;
    app.until_fanned_out(1).await;
    let (ada_before, grace_before) = (app.timeline(&ada).await, app.timeline(&grace).await);
    assert_eq!(ada_before.as_deref(), Some(&[post.clone()][..]));

    let event = PostEvent::created(
        PostId::parse(&post).unwrap(),
        UserId::parse(&grace.id).unwrap(),
        app.clock.now(),
    );
    let again = Message::new(
        app.app.posts_topic(),
        grace.id.clone(),
        serde_json::to_vec(&event).unwrap(),
    );
    app.topics.topics.producer().publish(again).await.unwrap();
    app.until_fanned_out(2).await;

    assert_eq!(app.timeline(&ada).await, ada_before);
    assert_eq!(app.timeline(&grace).await, grace_before);
    assert_eq!(app.feed_ids(&ada).await, [post]);
}

#[tokio::test]
async fn push_pull_and_hybrid_serve_the_same_pages_for_the_same_graph_and_posts() {
    let mut served = Vec::new();
    for strategy in Strategy::ALL {
        let app = TestApp::spawn_with(|settings| {
            settings.strategy = strategy;
            settings.timelines.celebrity_threshold = 2;
        })
        .await;
        served.push((strategy, pages_of_a_small_world(&app).await));
    }

    let (_, pull) = &served[0];
    for (strategy, pages) in &served[1..] {
        assert_eq!(pages, pull, "{strategy} differs from pull");
    }
}

/// Six users, two of them with more than two followers (celebrities in hybrid), posting in turn,
/// one post deleted; then every user's feed in pages of three, as texts (ids differ between
/// services).
async fn pages_of_a_small_world(app: &TestApp) -> Vec<Vec<Vec<String>>> {
    let mut users = Vec::new();
    for handle in ["a", "b", "c", "d", "e", "f"] {
        users.push(reader(app, handle).await);
    }
    let follows = [
        (1, 0),
        (2, 0),
        (3, 0),
        (4, 0), // a: four followers
        (0, 1),
        (2, 1),
        (3, 1), // b: three
        (0, 2),
        (4, 2), // c: two
        (5, 3), // d: one
    ];
    for (reader, author) in follows {
        app.follow(&users[reader], &users[author]).await;
    }
    let mut events = 0;
    let mut to_delete = None;
    for round in 0..4 {
        for (n, author) in users.iter().enumerate() {
            let id = app.post(author, &format!("{n}:{round}")).await;
            events += 1;
            if (n, round) == (2, 1) {
                to_delete = Some(id);
            }
        }
    }
    let response = app.delete_post(&to_delete.unwrap(), &users[2]).await;
    assert!(response.status.is_success());
    events += 1;
    if app.app.feed().timelines().fans_out() {
        app.until_fanned_out(events).await;
    }

    let mut feeds = Vec::new();
    for user in &users {
        let mut pages = Vec::new();
        let mut query = "?limit=3".to_owned();
        loop {
            let response = app.feed(user, &query).await;
            let body = response.json();
            let texts: Vec<String> = body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|post| post["text"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(texts.iter().collect::<HashSet<_>>().len(), texts.len());
            pages.push(texts);
            match body["next_cursor"].as_str() {
                Some(cursor) => query = format!("?limit=3&cursor={cursor}"),
                None => break,
            }
        }
        feeds.push(pages);
    }
    feeds
}
