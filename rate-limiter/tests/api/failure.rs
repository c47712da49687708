//! When the store is slow or down, each rule follows its failure policy within its timeout, and
//! keys known to be over their limit are answered without the store.
//!
//! These tests stop tokio's clock once the store is connected: with the store stalled, the
//! runtime has nothing to do but wait for a timer, so time jumps straight to the earliest one,
//! and the elapsed time measured is exactly what a real request would wait.

use std::{sync::Arc, time::Duration};

use rate_limiter::{
    algorithm::{Algorithm, TokenBucket},
    limiter::{LimitError, Limiter},
    rules::{FailMode, FailurePolicy, Rule},
};
use tokio::time::Instant;

use crate::helpers::{Fault, FaultyBackend, key, rule};

const TIMEOUT: Duration = Duration::from_millis(50);

fn with_policy(name: &str, mode: FailMode) -> Rule {
    let mut rule = rule(
        name,
        Algorithm::TokenBucket(TokenBucket::new(1, Duration::from_secs(3600), 2).unwrap()),
    );
    rule.failure = FailurePolicy {
        mode,
        timeout: TIMEOUT,
    };
    rule
}

async fn setup() -> (FaultyBackend, Arc<Limiter>) {
    let backend = FaultyBackend::new().await;
    let limiter = Arc::new(Limiter::new(
        vec![
            with_policy("open", FailMode::Open),
            with_policy("closed", FailMode::Closed),
        ],
        backend.store.clone(),
        1000,
    ));
    (backend, limiter)
}

async fn check(
    limiter: &Limiter,
    rules: &[&str],
    client: &str,
) -> Result<rate_limiter::limiter::Verdict, LimitError> {
    let requests: Vec<_> = rules
        .iter()
        .map(|name| (limiter.rule(name).unwrap().clone(), key(client)))
        .collect();
    limiter.check(&requests, 1).await
}

#[tokio::test]
async fn a_fail_open_rule_admits_when_the_store_does_not_answer_within_its_timeout() {
    let (backend, limiter) = setup().await;
    assert!(check(&limiter, &["open"], "a").await.unwrap().allowed);
    let failed_open_before = failed_open("open");

    backend.set(Fault::Hang);
    tokio::time::pause();
    let started = Instant::now();
    let verdict = check(&limiter, &["open"], "a").await.unwrap();
    let waited = started.elapsed();

    assert!(verdict.allowed);
    assert_eq!(
        verdict.outcomes[0].decision, None,
        "nothing is known, nothing is reported"
    );
    assert!(
        waited >= TIMEOUT && waited <= TIMEOUT + Duration::from_millis(1),
        "{waited:?}"
    );
    // Other tests in this binary fail open too, on the same process-wide recorder: the count
    // must have grown by at least this test's one.
    assert!(failed_open("open") > failed_open_before);
}

/// `ratelimit_decisions_total{rule, outcome="failed_open"}` as the recorder renders it now.
fn failed_open(rule: &str) -> f64 {
    platform::metrics::handle()
        .render()
        .lines()
        .filter(|line| line.starts_with("ratelimit_decisions_total{"))
        .filter(|line| line.contains(&format!("rule=\"{rule}\"")))
        .filter(|line| line.contains("outcome=\"failed_open\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_fail_closed_rule_rejects_when_the_store_does_not_answer_within_its_timeout() {
    let (backend, limiter) = setup().await;
    assert!(check(&limiter, &["closed"], "a").await.unwrap().allowed);

    backend.set(Fault::Hang);
    tokio::time::pause();
    let started = Instant::now();
    let result = check(&limiter, &["closed", "open"], "a").await;
    let waited = started.elapsed();

    assert!(matches!(result, Err(LimitError::Unavailable(ref rule)) if rule.as_str() == "closed"));
    assert!(waited <= TIMEOUT + Duration::from_millis(1), "{waited:?}");
}

#[tokio::test]
async fn when_the_store_is_down_each_rule_follows_its_policy_within_its_timeout() {
    let (backend, limiter) = setup().await;
    assert!(
        check(&limiter, &["open", "closed"], "a")
            .await
            .unwrap()
            .allowed
    );

    backend.set(Fault::Down);
    tokio::time::pause();
    let started = Instant::now();
    let open = check(&limiter, &["open"], "a").await.unwrap();
    let open_waited = started.elapsed();
    let closed = check(&limiter, &["closed"], "a").await;

    assert!(open.allowed);
    assert!(matches!(closed, Err(LimitError::Unavailable(_))));
    // Each within its own timeout. (In process, the refusal is immediate; through the redis
    // client, reconnecting to a dead server takes the whole timeout: DESIGN.md §6.)
    let closed_waited = started.elapsed() - open_waited;
    let limit = TIMEOUT + Duration::from_millis(1);
    assert!(open_waited <= limit, "{open_waited:?}");
    assert!(closed_waited <= limit, "{closed_waited:?}");
}

#[tokio::test]
async fn a_key_over_its_limit_is_rejected_without_asking_the_store_until_its_retry_time() {
    let (backend, limiter) = setup().await;
    assert!(check(&limiter, &["open"], "greedy").await.unwrap().allowed);
    assert!(check(&limiter, &["open"], "greedy").await.unwrap().allowed);
    let rejected = check(&limiter, &["open"], "greedy").await.unwrap();
    assert!(!rejected.allowed);
    let retry = rejected.retry_after();

    // With the store down, only the over-limit cache can still be rejecting this key.
    backend.set(Fault::Down);
    tokio::time::pause();
    let again = check(&limiter, &["open"], "greedy").await.unwrap();
    assert!(
        !again.allowed,
        "the repeat offender reached the (failing) store"
    );
    assert!(again.retry_after() <= retry);

    tokio::time::advance(retry).await;
    let later = check(&limiter, &["open"], "greedy").await.unwrap();
    assert!(
        later.allowed,
        "the cached rejection outlived the retry time"
    );
    assert_eq!(
        later.outcomes[0].decision, None,
        "answered by the failure policy"
    );
}
