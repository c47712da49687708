//! What a token bucket may have admitted, from when its requests were sent and answered as the
//! client saw them: the check a demonstration makes without assuming how fast this machine is.
//!
//! The limiter decides on its own clock (this process's, or Redis's `TIME`); the client only
//! knows that each request was decided somewhere between sending it and reading the answer. So a
//! round of requests is checked against the least the bucket must admit and the most it can in
//! that span (GCRA's arithmetic, `rate-limiter/src/algorithm/gcra.rs`). On any machine that
//! answers a round within a token's interval, the two are equal: the count is exact.

use std::time::Duration;

/// A token bucket as the client can know it: `burst` tokens, one back every `interval`, and the
/// span within which it was last empty (`None`: never spent, so full).
#[derive(Debug, Clone)]
pub struct Bucket {
    burst: u64,
    interval: Duration,
    /// The theoretical moment the bucket was empty (its TAT less `burst` intervals), between
    /// these two, in nanoseconds from the demonstration's start; `None` for a fresh key.
    empty_at: Option<(i128, i128)>,
}

/// The admitted count a round may have, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub least: u64,
    pub most: u64,
}

impl Expected {
    pub fn holds(&self, admitted: u64) -> bool {
        (self.least..=self.most).contains(&admitted)
    }

    /// "exactly 3" or "3 to 4".
    pub fn describe(&self) -> String {
        if self.least == self.most {
            format!("exactly {}", self.least)
        } else {
            format!("{} to {}", self.least, self.most)
        }
    }
}

impl Bucket {
    pub fn full(burst: u64, interval: Duration) -> Self {
        Self {
            burst,
            interval,
            empty_at: None,
        }
    }

    /// What a round of `sent` requests, sent at `from` and all answered by `to`, may admit.
    pub fn expect(&self, sent: u64, from: Duration, to: Duration) -> Expected {
        let (from, to) = (nanos(from), nanos(to));
        let (interval, burst) = (nanos(self.interval), i128::from(self.burst));
        let tokens = |span: i128| (span.max(0) / interval).min(burst) as u64;
        // The bucket is at least as empty as the latest it can have been emptied, and at most
        // as empty as the earliest; tokens also come back while the round is sent.
        let (least, most) = match self.empty_at {
            None => (self.burst, self.burst + ((to - from) / interval) as u64),
            Some((earliest, latest)) => {
                let most = (to - earliest.max(from - burst * interval)).max(0) / interval;
                (tokens(from - latest), most as u64)
            }
        };
        Expected {
            least: least.min(sent),
            most: most.min(sent),
        }
    }

    /// Records a round that admitted `admitted` between `from` and `to`. Each admission moves
    /// the TAT an interval past the later of itself and now, and an admission leaves the TAT
    /// within `burst` intervals of now.
    pub fn spend(&mut self, admitted: u64, from: Duration, to: Duration) {
        let (from, to) = (nanos(from), nanos(to));
        let interval = nanos(self.interval);
        let full_before = from - i128::from(self.burst) * interval;
        let (earliest, latest) = self.empty_at.unwrap_or((i128::MIN / 4, full_before));
        let spent = i128::from(admitted) * interval;
        let latest = if admitted == 0 {
            latest
        } else {
            to.min(latest.max(to - i128::from(self.burst) * interval) + spent)
        };
        self.empty_at = Some((earliest.max(full_before) + spent, latest));
    }
}

fn nanos(duration: Duration) -> i128 {
    i128::try_from(duration.as_nanos()).expect("a demonstration lasts less than centuries")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn bucket() -> Bucket {
        Bucket::full(20, 100 * MS)
    }

    #[test]
    fn a_fresh_bucket_admits_its_burst_and_whatever_came_back_while_the_round_ran() {
        let fast = bucket().expect(25, Duration::ZERO, 5 * MS);
        let slow = bucket().expect(25, Duration::ZERO, 250 * MS);

        assert_eq!(
            fast,
            Expected {
                least: 20,
                most: 20
            }
        );
        assert_eq!(
            slow,
            Expected {
                least: 20,
                most: 22
            }
        );
        assert_eq!(bucket().expect(5, Duration::ZERO, 5 * MS).most, 5);
    }

    #[test]
    fn after_emptying_it_a_wait_of_three_intervals_admits_exactly_three() {
        let mut bucket = bucket();
        bucket.spend(20, Duration::ZERO, 5 * MS);

        let expected = bucket.expect(8, 305 * MS, 310 * MS);

        assert_eq!(expected, Expected { least: 3, most: 3 });
    }

    #[test]
    fn a_slow_machine_widens_the_range_and_never_excludes_the_truth() {
        let mut bucket = bucket();
        // The burst took 150 ms, the wait overshot: the truth may be 3 or 4 or 5.
        bucket.spend(20, Duration::ZERO, 150 * MS);

        let expected = bucket.expect(8, 450 * MS, 520 * MS);

        assert_eq!(expected, Expected { least: 3, most: 5 });
    }

    #[test]
    fn an_idle_bucket_holds_no_more_than_its_burst() {
        let mut bucket = bucket();
        bucket.spend(20, Duration::ZERO, 5 * MS);
        bucket.spend(3, 305 * MS, 310 * MS);

        let expected = bucket.expect(25, 3_000 * MS, 3_005 * MS);

        assert_eq!(
            expected,
            Expected {
                least: 20,
                most: 20
            }
        );
    }

    #[test]
    fn a_round_that_admits_nothing_leaves_the_bucket_as_it_was() {
        let mut bucket = bucket();
        bucket.spend(20, Duration::ZERO, 5 * MS);
        bucket.spend(0, 10 * MS, 15 * MS);

        assert_eq!(
            bucket.expect(8, 305 * MS, 310 * MS),
            Expected { least: 3, most: 3 }
        );
    }
}
