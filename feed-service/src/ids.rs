//! Ids for users and posts: snowflakes (Twitter's scheme) cut down to 53 bits.
//!
//! ```text
//!  52                                          12 11         4 3        0
//! ┌──────────────────────────────────────────────┬────────────┬──────────┐
//! │ milliseconds since 2026-01-01T00:00Z (41)    │ sequence(8)│ inst. (4)│
//! └──────────────────────────────────────────────┴────────────┴──────────┘
//! ```
//!
//! - **Time in the high bits**, so ids sort by creation time: the feed orders by id, and a post id
//!   is a position a cursor can hold. 41 bits of milliseconds last until 2095.
//! - **53 bits, not Twitter's 63**, so that an id is exact as a double: the Redis timelines are
//!   sorted sets whose score is the post id, and a double holds every integer up to 2^53. That
//!   leaves 12 bits below the time instead of Twitter's 22.
//! - **A sequence of 8 bits**: 256 ids per millisecond per instance, 256,000 a second, against
//!   Twitter's 6,000 tweets a second (DESIGN.md §1). A burst beyond that borrows the next
//!   millisecond instead of waiting for it (the time in the ids runs ahead for a moment, until
//!   the wall clock catches up), and a clock that steps back never produces a smaller id: each id
//!   is `max(last + 1, now)`, one atomic compare-and-swap, and generating never blocks. Twitter's
//!   Snowflake waits for the next millisecond instead, and refuses to answer while its clock runs
//!   backwards (twitter-archive/snowflake, `README.mkd`); a request handler should not.
//! - **An instance number of 4 bits** (`FEED_INSTANCE_ID`, 0 to 15), which every instance must
//!   have to itself: two instances can then never make the same id, whatever their clocks say.
//!   Snowflake claimed its worker id as an ephemeral ZooKeeper node (`SnowflakeServer.scala`);
//!   here the deployment assigns it (a StatefulSet's ordinal, a unit's index). It is in the
//!   lowest bits, below the sequence, so that a burst that borrows time carries into the
//!   milliseconds and never into the instance's number.
//!
//! What the argument does not cover, two instances misconfigured with the same number or a
//! process restarted within the few milliseconds a burst borrowed, the database does: ids are
//! primary keys, an insert that meets a taken id fails, and the service retries with the next id
//! (`service.rs`, `tests/api/instances.rs`). The rejected alternatives: a database sequence
//! (one round trip and one hot row per id, and the order of ids is then the order of inserts,
//! not of time across shards), and random UUIDs (128 bits, no order, not exact as a score).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use platform::clock::Clock;
use time::{OffsetDateTime, macros::datetime};

use crate::domain::{PostId, UserId};

/// Millisecond 0 of every id.
pub const EPOCH: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

const TIME_BITS: u32 = 41;
const SEQUENCE_BITS: u32 = 8;
const INSTANCE_BITS: u32 = 4;

/// The number of an instance, part of every id it makes: 0 to 15, each instance its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceId(u8);

impl InstanceId {
    pub const MAX: u8 = (1 << INSTANCE_BITS) - 1;

    pub fn new(number: u64) -> Option<Self> {
        u8::try_from(number)
            .ok()
            .filter(|n| *n <= Self::MAX)
            .map(Self)
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// What an id says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// The millisecond it was made in (or borrowed, in a burst).
    pub at: OffsetDateTime,
    pub sequence: u16,
    pub instance: InstanceId,
}

impl Parts {
    pub fn of(id: u64) -> Self {
        let ticks = id >> INSTANCE_BITS;
        let millis = ticks >> SEQUENCE_BITS;
        Self {
            at: EPOCH + time::Duration::milliseconds(millis as i64),
            sequence: (ticks & ((1 << SEQUENCE_BITS) - 1)) as u16,
            instance: InstanceId((id & ((1 << INSTANCE_BITS) - 1)) as u8),
        }
    }
}

/// One instance's id generator; share it (in an `Arc`) among every task of the process.
pub struct Snowflake {
    instance: InstanceId,
    clock: Arc<dyn Clock>,
    /// The last (millisecond, sequence) pair handed out, as `millis << SEQUENCE_BITS | sequence`.
    last: AtomicU64,
}

impl Snowflake {
    pub fn new(instance: InstanceId, clock: Arc<dyn Clock>) -> Self {
        Self {
            instance,
            clock,
            last: AtomicU64::new(0),
        }
    }

    pub fn post_id(&self) -> PostId {
        PostId::new(self.next()).expect("a snowflake is within 1..2^53")
    }

    pub fn user_id(&self) -> UserId {
        UserId::new(self.next()).expect("a snowflake is within 1..2^53")
    }

    /// The next id: greater than every id this generator made before, and than every id of the
    /// same instance made in an earlier millisecond.
    pub fn next(&self) -> u64 {
        let now = self.now_ticks();
        let advance = |last: u64| now.max(last + 1);
        let previous = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(advance(last))
            })
            .expect("the update always proposes a value");
        let ticks = advance(previous);
        assert!(
            ticks < 1 << (TIME_BITS + SEQUENCE_BITS),
            "the 41 bits of milliseconds in an id ran out (the year 2095): widen the layout"
        );
        (ticks << INSTANCE_BITS) | u64::from(self.instance.0)
    }

    /// Milliseconds since [`EPOCH`] with a zero sequence; a clock before the epoch counts as 0.
    fn now_ticks(&self) -> u64 {
        let millis = (self.clock.now() - EPOCH).whole_milliseconds().max(0);
        u64::try_from(millis).unwrap_or(u64::MAX >> SEQUENCE_BITS) << SEQUENCE_BITS
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, thread, time::Duration};

    use platform::clock::{ManualClock, SystemClock};

    use super::*;
    use crate::domain::MAX_ID;

    fn instance(n: u64) -> InstanceId {
        InstanceId::new(n).unwrap()
    }

    fn frozen_at(at: OffsetDateTime) -> (ManualClock, Snowflake) {
        let clock = ManualClock::new(at);
        let ids = Snowflake::new(instance(3), Arc::new(clock.clone()));
        (clock, ids)
    }

    #[test]
    fn ids_made_on_many_threads_at_once_are_unique_and_increase_on_each_thread() {
        let ids = Arc::new(Snowflake::new(instance(7), Arc::new(SystemClock)));

        let per_thread: Vec<Vec<u64>> = (0..8)
            .map(|_| {
                let ids = ids.clone();
                thread::spawn(move || (0..20_000).map(|_| ids.next()).collect())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect();

        let mut all = HashSet::new();
        for made in &per_thread {
            assert!(made.windows(2).all(|pair| pair[0] < pair[1]));
            all.extend(made.iter().copied());
        }
        assert_eq!(all.len(), 8 * 20_000, "an id was handed out twice");
    }

    #[test]
    fn the_layout_is_53_bits_and_the_last_id_of_2095_still_fits() {
        assert_eq!(TIME_BITS + SEQUENCE_BITS + INSTANCE_BITS, 53);
        let last_millisecond = EPOCH + time::Duration::milliseconds((1 << TIME_BITS) - 1);
        let (_clock, ids) = frozen_at(last_millisecond);

        let id = ids.next();

        assert!(id <= MAX_ID, "{id} needs more than 53 bits");
        assert_eq!(Parts::of(id).at, last_millisecond);
    }

    #[test]
    fn an_id_carries_the_millisecond_and_the_instance_that_made_it() {
        let at = datetime!(2026-11-21 14:30:00.123 UTC);
        let (_clock, ids) = frozen_at(at);

        let parts = Parts::of(ids.next());

        assert_eq!(parts.at, at);
        assert_eq!(parts.sequence, 0);
        assert_eq!(parts.instance, instance(3));
    }

    #[test]
    fn a_burst_beyond_the_sequence_borrows_the_next_millisecond_instead_of_waiting() {
        let at = datetime!(2026-11-21 14:30:00 UTC);
        let (_clock, ids) = frozen_at(at);

        let burst: Vec<u64> = (0..300).map(|_| ids.next()).collect();

        assert!(burst.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(Parts::of(burst[255]).at, at);
        assert_eq!(Parts::of(burst[256]).at, at + Duration::from_millis(1));
        assert_eq!(Parts::of(burst[256]).sequence, 0);
    }

    #[test]
    fn a_clock_that_steps_back_never_makes_a_smaller_id() {
        let (clock, ids) = frozen_at(datetime!(2026-11-21 14:30:00 UTC));
        let before = ids.next();

        clock.set(datetime!(2026-11-21 14:29:59 UTC));

        assert!(ids.next() > before);
    }

    #[test]
    fn two_instances_on_the_same_clock_never_make_the_same_id() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(datetime!(2026-11-21 14:30 UTC)));
        let a = Snowflake::new(instance(1), clock.clone());
        let b = Snowflake::new(instance(2), clock);

        let from_a: HashSet<u64> = (0..1000).map(|_| a.next()).collect();
        let from_b: HashSet<u64> = (0..1000).map(|_| b.next()).collect();

        assert!(from_a.is_disjoint(&from_b));
    }

    #[test]
    fn instance_numbers_stop_at_fifteen() {
        assert!(InstanceId::new(15).is_some());
        assert!(InstanceId::new(16).is_none());
    }
}
