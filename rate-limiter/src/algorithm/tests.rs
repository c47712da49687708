//! The algorithms' arithmetic, exercised directly. The same properties are checked through each
//! store, in process and on Redis, by `tests/api/exactness.rs`.

use std::time::Duration;

use super::*;

const SECOND: Nanos = 1_000_000_000;
/// A start on a whole second, so that windows aligned to the epoch start with the test.
const T0: Nanos = 1_700_000_000 * SECOND;

fn every_algorithm() -> Vec<Algorithm> {
    vec![
        Algorithm::TokenBucket(TokenBucket::new(10, Duration::from_secs(1), 5).unwrap()),
        Algorithm::TokenBucket(TokenBucket::new(3, Duration::from_secs(1), 4).unwrap()),
        Algorithm::LeakyBucket(LeakyBucket::new(10, Duration::from_secs(1), 5).unwrap()),
        Algorithm::FixedWindow(FixedWindow::new(5, Duration::from_secs(1)).unwrap()),
        Algorithm::SlidingLog(SlidingLog::new(5, Duration::from_secs(1)).unwrap()),
        Algorithm::SlidingCounter(SlidingCounter::new(5, Duration::from_secs(1)).unwrap()),
        Algorithm::SlidingCounter(SlidingCounter::new(7, Duration::from_millis(1300)).unwrap()),
    ]
}

/// A small deterministic generator (xorshift), so that failures reproduce.
struct Sequence(u64);

impl Sequence {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[test]
fn a_rejection_names_the_exact_instant_capacity_returns() {
    for algorithm in every_algorithm() {
        let mut sequence = Sequence(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            let (mut state, mut now) = (None, T0 + sequence.next(SECOND));
            for _ in 0..40 {
                now += sequence.next(300_000_000);
                let units = 1 + sequence.next(algorithm.capacity());
                match algorithm.check(state.as_ref(), now, units) {
                    Ok(()) => state = Some(algorithm.spend(state, now, units)),
                    Err(wait) => {
                        let wait = wait.as_nanos() as u64;
                        assert!(
                            algorithm
                                .check(state.as_ref(), now + wait - 1, units)
                                .is_err(),
                            "{algorithm:?} admitted {units} a nanosecond before the retry time"
                        );
                        assert!(
                            algorithm.check(state.as_ref(), now + wait, units).is_ok(),
                            "{algorithm:?} still rejected {units} at the retry time"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn remaining_counts_what_a_check_would_admit() {
    for algorithm in every_algorithm() {
        let mut sequence = Sequence(42);
        let (mut state, mut now) = (None, T0);
        for _ in 0..500 {
            now += sequence.next(200_000_000);
            let remaining = algorithm.status(state.as_ref(), now).remaining;
            assert!(remaining <= algorithm.capacity());
            if remaining > 0 {
                assert!(
                    algorithm.check(state.as_ref(), now, remaining).is_ok(),
                    "{algorithm:?} reported {remaining} left but refused them"
                );
            }
            if let Ok(()) = algorithm.check(state.as_ref(), now, 1) {
                state = Some(algorithm.spend(state, now, 1));
            }
        }
    }
}

#[test]
fn a_key_reads_as_full_once_its_state_may_be_forgotten() {
    for algorithm in every_algorithm() {
        let capacity = algorithm.capacity();
        let state = algorithm.spend(None, T0 + 123, capacity);
        let forget = algorithm.forget_after(&state, T0 + 123).as_nanos() as u64;
        assert!(forget > 0);
        assert_eq!(
            algorithm.status(Some(&state), T0 + 123 + forget).remaining,
            capacity,
            "{algorithm:?} forgot a key that was not yet full"
        );
        assert!(
            algorithm
                .check(Some(&state), T0 + 123 + forget, capacity)
                .is_ok()
        );
    }
}

#[test]
fn a_token_bucket_refills_one_token_per_interval() {
    let bucket = TokenBucket::new(10, Duration::from_secs(1), 5).unwrap();
    let tat = bucket.spend(None, T0, 5);
    assert_eq!(bucket.status(Some(tat), T0), (0, 500_000_000));
    assert_eq!(bucket.check(Some(tat), T0, 1), 100_000_000);
    assert_eq!(bucket.status(Some(tat), T0 + 250_000_000), (2, 250_000_000));
}

#[test]
fn an_inexact_rate_rounds_the_interval_up() {
    let bucket = TokenBucket::new(3, Duration::from_secs(1), 1).unwrap();
    assert_eq!(
        bucket.interval, 333_334_000,
        "whole microseconds, as Redis counts"
    );
}

#[test]
fn the_leaky_bucket_spaces_admitted_requests_one_interval_apart() {
    let bucket = LeakyBucket::new(10, Duration::from_secs(1), 3).unwrap();
    let mut tat = None;
    let mut delays = vec![];
    for _ in 0..3 {
        assert_eq!(bucket.check(tat, T0, 1), 0);
        delays.push(bucket.delay(tat, T0));
        tat = Some(bucket.spend(tat, T0, 1));
    }
    assert_eq!(delays, [0, 100_000_000, 200_000_000]);
    assert_eq!(bucket.check(tat, T0, 1), 100_000_000, "the queue is full");
}

#[test]
fn the_sliding_counter_weighs_the_previous_window_by_its_overlap() {
    let counter = SlidingCounter::new(10, Duration::from_secs(1)).unwrap();
    // 10 spent in the previous window; a quarter of the way into this one, it weighs 7.5.
    let state = Some((T0 / SECOND - 1, 10, 0));
    let now = T0 + SECOND / 4;
    assert_eq!(counter.status(state, now).0, 2);
    assert_eq!(counter.check(state, now, 2), 0);
    // Three units fit once the previous window weighs 7: 30% of the way in.
    assert_eq!(counter.check(state, now, 3), SECOND * 3 / 10 - SECOND / 4);
}

#[test]
fn parameters_that_describe_no_limit_are_refused() {
    assert!(TokenBucket::new(0, Duration::from_secs(1), 1).is_err());
    assert!(TokenBucket::new(1, Duration::ZERO, 1).is_err());
    assert!(TokenBucket::new(1, Duration::from_secs(1), 0).is_err());
    assert!(FixedWindow::new(0, Duration::from_secs(1)).is_err());
    assert!(SlidingLog::new(1, Duration::from_secs(400 * 24 * 3600)).is_err());
    assert!(SlidingCounter::new(u64::MAX / 2, Duration::from_secs(3600)).is_err());
    assert!(SlidingLog::new(SlidingLog::MAX_LIMIT + 1, Duration::from_secs(1)).is_err());
    assert!(FixedWindow::new(1, Duration::from_nanos(1_500)).is_err());
}

#[test]
fn a_clock_that_steps_back_never_hands_out_capacity_early() {
    // Wall clocks step back (NTP), and two threads can read the time in one order and take the
    // lock in the other. A state from "the future" must not panic, and must not read as empty.
    for algorithm in every_algorithm() {
        let capacity = algorithm.capacity();
        // Spent just after a window boundary; the steps back reach into the window before.
        let spent_at = T0 + SECOND + SECOND / 10;
        let mut state = Some(algorithm.spend(None, spent_at, capacity));
        for back in [1, 1_000, SECOND / 20, SECOND / 5] {
            let earlier = spent_at - back;
            assert!(
                algorithm.check(state.as_ref(), earlier, 1).is_err(),
                "{algorithm:?} admitted more after the clock stepped back {back} ns"
            );
            assert_eq!(algorithm.status(state.as_ref(), earlier).remaining, 0);
            let _ = algorithm.delay(state.as_ref(), earlier);
        }
        // Spending at an earlier time (another check allowed it) keeps counting everything.
        state = Some(algorithm.spend(state, T0, 0));
        assert_eq!(algorithm.status(state.as_ref(), spent_at).remaining, 0);
    }
}

#[test]
fn a_period_too_long_to_round_to_whole_microseconds_is_refused_not_wrapped() {
    // u64::MAX nanoseconds rounded up to a microsecond is past u64::MAX.
    let longest = Duration::from_nanos(u64::MAX);
    assert!(TokenBucket::new(1, longest, 1).is_err());
    assert!(LeakyBucket::new(1, longest, 1).is_err());
}
