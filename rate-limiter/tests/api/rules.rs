//! Several rules on one request: all-or-nothing, and shadow mode.

use rate_limiter::algorithm::{Algorithm, FixedWindow, TokenBucket};
use std::time::Duration;

use crate::helpers::{TestLimiter, rule};

fn rules() -> Vec<rate_limiter::rules::Rule> {
    let second = Duration::from_secs(1);
    let mut shadow = rule(
        "shadow",
        Algorithm::FixedWindow(FixedWindow::new(1, Duration::from_secs(60)).unwrap()),
    );
    shadow.shadow = true;
    vec![
        rule(
            "roomy",
            Algorithm::TokenBucket(TokenBucket::new(10, second, 10).unwrap()),
        ),
        rule(
            "tight",
            Algorithm::FixedWindow(FixedWindow::new(2, Duration::from_secs(60)).unwrap()),
        ),
        shadow,
    ]
}

#[tokio::test]
async fn a_request_one_rule_rejects_costs_the_other_rules_nothing() {
    let t = TestLimiter::new(rules()).await;
    for _ in 0..2 {
        assert!(t.check(&["roomy", "tight"], "client", 1).await.allowed);
    }
    for _ in 0..5 {
        let verdict = t.check(&["roomy", "tight"], "client", 1).await;
        assert!(!verdict.allowed);
        let roomy = verdict.outcomes[0].decision.unwrap();
        assert!(roomy.allowed, "roomy alone would admit it");
        assert_eq!(
            roomy.status.remaining, 8,
            "the rejected requests spent roomy's tokens"
        );
    }
    let alone = t.check(&["roomy"], "client", 1).await;
    assert_eq!(alone.outcomes[0].decision.unwrap().status.remaining, 7);
}

#[tokio::test]
async fn a_rule_in_shadow_mode_decides_but_never_rejects() {
    let t = TestLimiter::new(rules()).await;
    let first = t.check(&["roomy", "shadow"], "client", 1).await;
    assert!(first.allowed);
    let second = t.check(&["roomy", "shadow"], "client", 1).await;
    assert!(second.allowed, "shadow mode rejected a request");
    let shadow = second.outcomes[1].decision.unwrap();
    assert!(
        !shadow.allowed,
        "the shadow rule should have recorded a rejection"
    );
    assert_eq!(
        second.outcomes[0].decision.unwrap().status.remaining,
        8,
        "a shadow rejection must not stop the enforced rules from spending"
    );
}

#[tokio::test]
async fn the_retry_time_of_a_request_is_that_of_its_slowest_rule() {
    let t = TestLimiter::new(rules()).await;
    t.check(&["roomy"], "client", 10).await;
    t.check(&["tight"], "client", 2).await;
    let verdict = t.check(&["roomy", "tight"], "client", 1).await;
    // roomy refills a token in 100 ms; tight's minute-long window ends with the minute.
    let tight = verdict.outcomes[1].decision.unwrap().retry_after;
    assert!(tight > Duration::from_millis(100));
    assert_eq!(verdict.retry_after(), tight);
}

#[tokio::test]
async fn a_cost_beyond_a_shadow_rules_capacity_is_recorded_not_refused() {
    let t = TestLimiter::new(rules()).await;
    let verdict = t.check(&["roomy", "shadow"], "client", 2).await;
    assert!(verdict.allowed, "a shadow rule refused a request");
    assert!(!verdict.outcomes[1].decision.unwrap().allowed);
    assert_eq!(verdict.outcomes[0].decision.unwrap().status.remaining, 8);
}
