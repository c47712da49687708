//! Each algorithm with a clock the test moves: bursts admitted exactly, capacity back at the
//! computed instant and not one step of the store's clock before (1 ns in process, 1 µs for
//! Redis), the fixed window's boundary burst, and what a rejection or a peek costs.

use std::time::Duration;

use platform::clock::Clock;
use rate_limiter::{
    algorithm::{Algorithm, SlidingCounter, State, TokenBucket},
    store::Decision,
};

use crate::helpers::{TestLimiter, every_algorithm, rule};

const MS: Duration = Duration::from_millis(1);

/// After a full burst at the start of a window: when one more unit fits again.
fn expected_retry(algorithm: &Algorithm) -> Duration {
    match algorithm {
        // 5 per second: one token every 200 ms.
        Algorithm::TokenBucket(_) | Algorithm::LeakyBucket(_) => 200 * MS,
        // The window (1 s, starting with the test) must end.
        Algorithm::FixedWindow(_) | Algorithm::SlidingLog(_) => 1000 * MS,
        // Next window, once the previous one's 5 weigh 4: a fifth of the way in.
        Algorithm::SlidingCounter(_) => 1200 * MS,
    }
}

#[tokio::test]
async fn the_first_burst_is_admitted_exactly_and_capacity_returns_at_the_computed_instant() {
    for algorithm in every_algorithm() {
        let name = algorithm.name();
        let expected = expected_retry(&algorithm);
        let t = TestLimiter::new(vec![rule("r", algorithm)]).await;

        for n in 1..=5 {
            let verdict = t.check(&["r"], "client", 1).await;
            assert!(
                verdict.allowed,
                "{name}: request {n} of the burst was rejected"
            );
        }
        let rejected = t.check(&["r"], "client", 1).await;
        assert!(!rejected.allowed, "{name}: admitted a sixth request");
        assert_eq!(rejected.retry_after(), expected, "{name}");
        assert_eq!(rejected.outcomes[0].decision.unwrap().status.remaining, 0);

        t.advance(expected - t.resolution);
        let early = t.check(&["r"], "client", 1).await;
        assert!(!early.allowed, "{name}: admitted one clock step early");
        assert_eq!(early.retry_after(), t.resolution, "{name}");

        t.advance(t.resolution);
        assert!(
            t.check(&["r"], "client", 1).await.allowed,
            "{name}: rejected at the instant"
        );
    }
}

#[tokio::test]
async fn a_fixed_window_admits_twice_its_limit_across_a_boundary() {
    let t = TestLimiter::new(vec![rule("fixed", every_algorithm().remove(2))]).await;
    t.advance(999 * MS);
    let before = spend_all(&t, "fixed", 10).await;
    t.advance(MS);
    let after = spend_all(&t, "fixed", 10).await;
    assert_eq!(
        (before, after),
        (5, 5),
        "10 admitted within 1 ms, for a limit of 5 per second"
    );
}

#[tokio::test]
async fn gcra_the_leaky_bucket_and_the_sliding_log_have_no_boundary_burst() {
    for algorithm in every_algorithm() {
        let name = algorithm.name();
        if matches!(
            algorithm,
            Algorithm::FixedWindow(_) | Algorithm::SlidingCounter(_)
        ) {
            continue;
        }
        let t = TestLimiter::new(vec![rule("r", algorithm)]).await;
        t.advance(999 * MS);
        assert_eq!(spend_all(&t, "r", 10).await, 5, "{name}");
        t.advance(MS);
        assert_eq!(
            spend_all(&t, "r", 10).await,
            0,
            "{name}: admitted more across a boundary"
        );
    }
}

#[tokio::test]
async fn a_rejected_request_spends_nothing() {
    for algorithm in every_algorithm() {
        let name = algorithm.name();
        let expected = expected_retry(&algorithm);
        let t = TestLimiter::new(vec![rule("r", algorithm)]).await;
        spend_all(&t, "r", 5).await;

        // Hammering while rejected, now and halfway to the retry time, moves nothing.
        for _ in 0..20 {
            assert!(!t.check(&["r"], "client", 1).await.allowed);
        }
        t.advance(expected / 2);
        for _ in 0..20 {
            let verdict = t.check(&["r"], "client", 1).await;
            assert!(!verdict.allowed);
            assert_eq!(verdict.retry_after(), expected - expected / 2, "{name}");
        }
        t.advance(expected - expected / 2);
        assert!(
            t.check(&["r"], "client", 1).await.allowed,
            "{name}: rejections were counted"
        );
    }
}

#[tokio::test]
async fn a_peek_answers_without_spending() {
    for algorithm in every_algorithm() {
        let name = algorithm.name();
        let t = TestLimiter::new(vec![rule("r", algorithm)]).await;
        t.check(&["r"], "client", 2).await;
        for _ in 0..10 {
            let peek = t.check(&["r"], "client", 0).await;
            assert!(peek.allowed, "{name}");
            assert_eq!(
                peek.outcomes[0].decision.unwrap().status.remaining,
                3,
                "{name}"
            );
        }
        t.check(&["r"], "client", 3).await;
        let peek = t.check(&["r"], "client", 0).await;
        assert!(!peek.allowed, "{name}: a peek at an empty key says no");
        assert!(peek.retry_after() > Duration::ZERO, "{name}");
    }
}

#[tokio::test]
async fn a_cost_spends_that_many_units_and_remaining_never_goes_below_zero() {
    for algorithm in every_algorithm() {
        let name = algorithm.name();
        let t = TestLimiter::new(vec![rule("r", algorithm)]).await;
        let verdict = t.check(&["r"], "client", 3).await;
        assert_eq!(
            verdict.outcomes[0].decision.unwrap().status.remaining,
            2,
            "{name}"
        );
        let too_much = t.check(&["r"], "client", 3).await;
        assert!(!too_much.allowed, "{name}");
        assert_eq!(
            too_much.outcomes[0].decision.unwrap().status.remaining,
            2,
            "{name}"
        );
        assert!(t.check(&["r"], "client", 2).await.allowed, "{name}");
        let empty = t.check(&["r"], "client", 1).await;
        assert_eq!(
            empty.outcomes[0].decision.unwrap().status.remaining,
            0,
            "{name}"
        );
    }
}

#[tokio::test]
async fn clients_do_not_share_a_limit() {
    let t = TestLimiter::new(vec![rule("r", every_algorithm().remove(0))]).await;
    spend_all(&t, "r", 5).await;
    assert!(!t.check(&["r"], "client", 1).await.allowed);
    assert!(t.check(&["r"], "someone else", 1).await.allowed);
}

/// The sliding counter's error, measured against the definition of the limit on two traces at
/// about 1.5 times the limit, starting 3 s into a 10 s window: the most units it admits in any
/// sliding window (over the whole trace, and once the start-up is two windows behind), and how
/// often it rejects a request that the exact count would have admitted. Printed for
/// `DESIGN.md` §4; the assertions are the bounds the design doc states.
#[tokio::test]
async fn the_sliding_counter_stays_within_its_measured_error() {
    // Evenly spread requests: the counter's assumption holds once traffic is under way.
    let steady = measure_counter(|next| next(133)).await;
    assert!(
        steady.worst_settled <= steady.limit * 103 / 100,
        "{steady:?}"
    );
    // Bursts and lulls: a burst late in one window is assumed spread over it, and the counter
    // lets more through in the next.
    let bursty = measure_counter(|next| if next(10) < 3 { next(5) } else { next(185) }).await;
    // Either way, never twice the limit (its theoretical worst: a full window's units at the
    // very end of one window, and nearly as many again late in the next).
    for measured in [&steady, &bursty] {
        assert!(measured.worst < measured.limit * 2, "{measured:?}");
    }
}

#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct CounterError {
    limit: u64,
    requests: u64,
    worst: u64,
    worst_settled: u64,
    false_rejections: u64,
}

async fn measure_counter(gap_ms: impl Fn(&mut dyn FnMut(u64) -> u64) -> u64) -> CounterError {
    let (limit, window) = (100, Duration::from_secs(10));
    let t = TestLimiter::new(vec![rule(
        "counter",
        Algorithm::SlidingCounter(SlidingCounter::new(limit, window).unwrap()),
    )])
    .await;
    t.clock
        .set(time::macros::datetime!(2026-01-01 00:00:03 UTC));
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let (mut admitted_at, mut false_rejections, mut requests) = (Vec::<Duration>::new(), 0, 0);
    let mut now = Duration::ZERO;
    while now < window * 60 {
        let step = Duration::from_millis(gap_ms(&mut next));
        now += step;
        t.advance(step);
        requests += 1;
        let verdict = t.check(&["counter"], "client", 1).await;
        // The exact count of what the counter admitted in the window ending now.
        let in_window = admitted_at.iter().filter(|at| **at + window > now).count() as u64;
        if verdict.allowed {
            admitted_at.push(now);
        } else if in_window < limit {
            false_rejections += 1;
        }
    }
    let in_window_ending = |end: &Duration| {
        admitted_at
            .iter()
            .filter(|at| **at <= *end && **at + window > *end)
            .count() as u64
    };
    let worst = admitted_at.iter().map(in_window_ending).max().unwrap();
    let worst_settled = admitted_at
        .iter()
        .filter(|end| **end > window * 2)
        .map(in_window_ending)
        .max()
        .unwrap();
    let percent = |n: u64| (n as f64 / limit as f64 - 1.0) * 100.0;
    println!(
        "sliding counter, {requests} requests for a limit of {limit}/10s: most admitted in a \
         window {worst} ({:+.0}%), after the first two windows {worst_settled} ({:+.0}%), \
         false rejections {false_rejections} ({:.1}% of requests)",
        percent(worst),
        percent(worst_settled),
        false_rejections as f64 * 100.0 / requests as f64
    );
    CounterError {
        limit,
        requests,
        worst,
        worst_settled,
        false_rejections,
    }
}

async fn spend_all(t: &TestLimiter, rule: &str, attempts: usize) -> usize {
    let mut admitted = 0;
    for _ in 0..attempts {
        if t.check(&[rule], "client", 1).await.allowed {
            admitted += 1;
        }
    }
    admitted
}

/// The store against the algorithms' own arithmetic, decision by decision, on random sequences
/// of costs (peeks included) and gaps: in process this checks the store's bookkeeping (shards,
/// forgetting, the two phases); on Redis it checks the Lua script against the Rust it mirrors.
#[tokio::test]
async fn the_store_decides_exactly_as_the_reference_arithmetic() {
    let mut algorithms = every_algorithm();
    algorithms.push(Algorithm::TokenBucket(
        TokenBucket::new(3, Duration::from_secs(1), 4).unwrap(),
    ));
    algorithms.push(Algorithm::SlidingCounter(
        SlidingCounter::new(7, Duration::from_millis(1300)).unwrap(),
    ));
    for algorithm in algorithms {
        let name = algorithm.name();
        let t = TestLimiter::new(vec![rule("r", algorithm.clone())]).await;
        let mut state: Option<State> = None;
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for step in 0..150 {
            // Whole microseconds, the resolution both stores share.
            t.advance(Duration::from_micros(next(300_000)));
            let now = t.clock.now().unix_timestamp_nanos() as u64;
            let units = next(algorithm.capacity() + 1);

            let verdict = algorithm.check(state.as_ref(), now, units.max(1));
            let delay = match verdict {
                Ok(()) => algorithm.delay(state.as_ref(), now),
                Err(_) => Duration::ZERO,
            };
            if verdict.is_ok() && units > 0 {
                state = Some(algorithm.spend(state.take(), now, units));
            }
            // Redis computes in microseconds: the sliding counter's retry time, a quotient, comes
            // out as the exact one rounded up to the store's resolution (never earlier).
            let resolution = t.resolution.as_nanos();
            let retry = verdict
                .err()
                .unwrap_or_default()
                .as_nanos()
                .div_ceil(resolution)
                * resolution;
            let expected = Decision {
                allowed: verdict.is_ok(),
                status: algorithm.status(state.as_ref(), now),
                retry_after: Duration::from_nanos(retry as u64),
                delay,
            };

            let decided = t.check(&["r"], "client", units).await.outcomes[0].decision;
            assert_eq!(decided, Some(expected), "{name}, step {step}, cost {units}");
        }
    }
}

/// A small deterministic generator (xorshift): `next(n)` is below `n`, and failures reproduce.
fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |below| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    }
}
