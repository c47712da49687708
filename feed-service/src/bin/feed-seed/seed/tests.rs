//! The graph's shape and determinism, without a database (`tests/api/seed.rs` writes one).

use time::macros::datetime;

use super::*;

fn plan(users: u32, following: u32, posts: u64) -> Plan {
    Plan {
        users,
        following,
        posts,
        sample: 20,
        celebrity_threshold: u64::from(users / 10),
        ..Plan::new(datetime!(2026-11-21 12:00 UTC))
    }
}

#[test]
fn the_same_seed_makes_the_same_graph_posts_and_tokens_and_another_seed_does_not() {
    let first = plan(2_000, 10, 500);
    let again = Graph::generate(&first);
    let graph = Graph::generate(&first);
    let other = Graph::generate(&Plan {
        seed: 2,
        ..first.clone()
    });

    assert_eq!(graph, again);
    assert_eq!(
        graph.posts(&first).collect::<Vec<_>>(),
        again.posts(&first).collect::<Vec<_>>()
    );
    assert_eq!(token(first.seed, 7), token(first.seed, 7));
    assert_ne!(token(first.seed, 7), token(first.seed, 8));
    assert_ne!(token(1, 7), token(2, 7));
    let follows = |graph: &Graph| -> Vec<Vec<u32>> {
        graph.users.iter().map(|u| u.following.clone()).collect()
    };
    assert_ne!(follows(&graph), follows(&other));
}

#[test]
fn follows_are_distinct_never_yourself_and_every_count_is_the_number_of_rows() {
    let plan = plan(1_000, 15, 0);
    let graph = Graph::generate(&plan);

    let mut followers = vec![0u64; 1_000];
    for (index, user) in graph.users.iter().enumerate() {
        assert!(user.following.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(!user.following.contains(&(index as u32)));
        assert!((1..=29).contains(&user.following.len()));
        for followee in &user.following {
            followers[*followee as usize] += 1;
        }
    }
    let counted: Vec<u64> = graph.users.iter().map(|user| user.followers).collect();
    assert_eq!(counted, followers);
    assert_eq!(graph.follows(), followers.iter().sum::<u64>());
    let mean = graph.follows() as f64 / 1_000.0;
    assert!((13.0..=17.0).contains(&mean), "{mean} follows a user");
}

#[test]
fn a_few_users_hold_most_follows_and_the_first_is_followed_by_everyone() {
    let plan = plan(20_000, 20, 0);
    let graph = Graph::generate(&plan);

    assert_eq!(graph.users[0].followers, 19_999);
    let top = graph.share_of_top(0.01);
    assert!(top > 0.5, "the top 1% hold {top:.2} of follows");
    // Zipf: popularity falls with rank. The 10th user has several times the 100th's followers,
    // who has several times the 1,000th's; the median user has a handful.
    let followers = |rank: usize| graph.users[rank].followers;
    assert!(
        followers(9) > 3 * followers(99),
        "{} {}",
        followers(9),
        followers(99)
    );
    assert!(
        followers(99) > 3 * followers(999),
        "{} {}",
        followers(99),
        followers(999)
    );
    let mut counts: Vec<u64> = graph.users.iter().map(|user| user.followers).collect();
    counts.sort_unstable();
    assert!(
        counts[counts.len() / 2] <= 5,
        "median {}",
        counts[counts.len() / 2]
    );
    let celebrities = graph.celebrities(plan.celebrity_threshold);
    assert_eq!(celebrities[0], 0);
    // A few: 0.2 % of the users have a tenth of them as followers.
    assert!(
        celebrities.len() < 40,
        "{} above the threshold",
        celebrities.len()
    );
}

#[test]
fn posts_are_in_the_window_before_the_seed_oldest_first_with_ids_above_every_user() {
    let plan = plan(100, 5, 3_000);
    let graph = Graph::generate(&plan);
    let posts: Vec<SeedPost> = graph.posts(&plan).collect();
    let last_user = graph.users.iter().map(|user| user.id.get()).max().unwrap();

    assert_eq!(posts.len(), 3_000);
    assert!(posts.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert!(
        posts
            .windows(2)
            .all(|pair| pair[0].created_at <= pair[1].created_at)
    );
    assert!(posts[0].id.get() > last_user);
    assert!(posts[0].created_at >= plan.at - Duration::from_secs(7 * 86_400));
    assert!(posts.last().unwrap().created_at < plan.at);
    assert!(graph.created_at < posts[0].created_at);
    for post in &posts {
        assert_eq!(
            feed_service::ids::Parts::of(post.id.get()).at,
            post.created_at
        );
        assert!(feed_service::domain::PostText::parse(post.text.clone()).is_ok());
    }
}

#[test]
fn the_manifest_lists_the_celebrities_and_a_sample_with_tokens_that_hash_as_stored() {
    let plan = plan(1_000, 10, 0);
    let graph = Graph::generate(&plan);

    let manifest = Manifest::of(&plan, &graph);

    assert_eq!(manifest.top.id, graph.users[0].id.to_string());
    assert_eq!(manifest.top.followers, 999);
    assert_eq!(manifest.celebrities[0].id, manifest.top.id);
    assert!(
        manifest
            .celebrities
            .iter()
            .all(|user| user.followers > plan.celebrity_threshold)
    );
    assert_eq!(manifest.sample.len(), 20);
    let rows: Vec<UserRow> = user_rows(&plan, &graph).collect();
    for user in manifest.celebrities.iter().chain(&manifest.sample) {
        let row = rows
            .iter()
            .find(|row| row.id.to_string() == user.id)
            .unwrap();
        assert_eq!(ApiKey::parse(&user.token).unwrap().hash(), row.token_hash);
        assert_eq!(user.handle, row.handle);
    }
}

#[test]
fn plans_that_cannot_make_a_graph_are_refused() {
    let good = plan(10, 2, 10);
    assert_eq!(good.check(), Ok(()));
    for bad in [
        Plan {
            users: 1,
            ..good.clone()
        },
        Plan {
            following: 0,
            ..good.clone()
        },
        Plan {
            active: 1.5,
            ..good.clone()
        },
        Plan {
            exponent: -1.0,
            ..good.clone()
        },
        Plan {
            days: 0,
            ..good.clone()
        },
    ] {
        assert!(bad.check().is_err(), "{bad:?}");
    }
}
