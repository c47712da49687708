//! Many concurrent clients against several limiter instances sharing one store: Redis when
//! `REDIS_URL` is set (three connections, time from Redis's own clock, as in production), the
//! in-process store otherwise (three limiters over one store, on both cores).

use std::{sync::Arc, time::Duration};

use platform::{
    clock::SystemClock,
    testing::{redis_url, unique_namespace},
};
use rate_limiter::{
    algorithm::{Algorithm, SlidingCounter, SlidingLog, TokenBucket},
    limiter::Limiter,
    rules::Rule,
    store::{MemoryStore, Store},
};

use crate::helpers::{key, redis_store, rule};

const LIMIT: u64 = 50;
const INSTANCES: usize = 3;
const CLIENTS: usize = 300;

fn rules() -> Vec<Rule> {
    // Refills so slow that none happens during the test: exactly LIMIT may be admitted.
    let hour = Duration::from_secs(3600);
    vec![
        rule(
            "gcra",
            Algorithm::TokenBucket(TokenBucket::new(LIMIT, hour, LIMIT).unwrap()),
        ),
        rule(
            "log",
            Algorithm::SlidingLog(SlidingLog::new(LIMIT, hour).unwrap()),
        ),
        rule(
            "counter",
            Algorithm::SlidingCounter(SlidingCounter::new(LIMIT, hour).unwrap()),
        ),
    ]
}

async fn instances() -> Vec<Arc<Limiter>> {
    let shared: Vec<Arc<dyn Store>> = match redis_url() {
        Some(url) => {
            let namespace = unique_namespace();
            let mut stores: Vec<Arc<dyn Store>> = vec![];
            for _ in 0..INSTANCES {
                stores.push(Arc::new(redis_store(&url, &namespace).await));
            }
            stores
        }
        None => {
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
            vec![store; INSTANCES]
        }
    };
    shared
        .into_iter()
        .map(|store| Arc::new(Limiter::new(rules(), store, 10_000)))
        .collect()
}

async fn admitted_under_contention(rule_name: &'static str) -> u64 {
    let instances = instances().await;
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let limiter = instances[client % INSTANCES].clone();
        clients.spawn(async move {
            let rule = limiter.rule(rule_name).unwrap().clone();
            limiter
                .check(&[(rule, key("contended"))], 1)
                .await
                .unwrap()
                .allowed
        });
    }
    let mut admitted = 0;
    while let Some(allowed) = clients.join_next().await {
        admitted += u64::from(allowed.unwrap());
    }
    admitted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_admits_exactly_its_limit_across_instances() {
    assert_eq!(admitted_under_contention("gcra").await, LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sliding_log_admits_exactly_its_limit_across_instances() {
    assert_eq!(admitted_under_contention("log").await, LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sliding_counter_admits_exactly_its_limit_at_one_instant() {
    // At one instant the counter is exact too; its error is over time (see exactness.rs).
    assert_eq!(admitted_under_contention("counter").await, LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_under_two_rules_are_each_all_or_nothing() {
    // With Redis, concurrent requests share script calls (batches); each must still spend
    // nothing when the tight rule rejects it.
    let hour = Duration::from_secs(3600);
    let limiter = Arc::new(Limiter::new(
        vec![
            rule(
                "roomy",
                Algorithm::SlidingLog(SlidingLog::new(1000, hour).unwrap()),
            ),
            rule(
                "tight",
                Algorithm::TokenBucket(TokenBucket::new(10, hour, 10).unwrap()),
            ),
        ],
        instances().await[0].store().clone(),
        0,
    ));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let limiter = limiter.clone();
        clients.spawn(async move {
            let requests = [
                (limiter.rule("roomy").unwrap().clone(), key("both")),
                (limiter.rule("tight").unwrap().clone(), key("both")),
            ];
            limiter.check(&requests, 1).await.unwrap().allowed
        });
    }
    let mut admitted = 0;
    while let Some(allowed) = clients.join_next().await {
        admitted += u64::from(allowed.unwrap());
    }
    assert_eq!(admitted, 10);

    let roomy = limiter.rule("roomy").unwrap().clone();
    let peek = limiter.check(&[(roomy, key("both"))], 0).await.unwrap();
    assert_eq!(
        peek.outcomes[0].decision.unwrap().status.remaining,
        990,
        "rejected requests spent the roomy rule's quota"
    );
}
