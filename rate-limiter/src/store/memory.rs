//! The in-process store: each key's state in one of 64 mutex-guarded shards.
//!
//! A decision locks the shards of its keys (in index order, so that two multi-rule requests can
//! never wait on each other), decides every check, spends only if none of the enforced ones
//! rejected, and unlocks. A `std::sync::Mutex` is right here, as mini-redis argues for its
//! `db.rs`: the critical section is a map lookup and some integer arithmetic, never an `.await`,
//! and sharding keeps two cores from queueing on the same lock. (governor's keyed limiter goes
//! further, a lock-free `AtomicU64` per key on a `DashMap`; it cannot spend across several rules
//! atomically, which we need. `benches/decisions.rs` measures both; DESIGN.md §11 reads the
//! results.)
//!
//! Keys are forgotten once their state means the same as no state (see
//! [`Algorithm::forget_after`]): a shard sweeps itself when it has doubled in size since the last
//! sweep, so memory follows the number of live keys at an amortised cost of O(1) per insert.
//!
//! **Bounded.** Keys are what clients send (an address, a header), so live keys are capped
//! ([`MemoryStore::DEFAULT_MAX_KEYS`], or [`MemoryStore::with_max_keys`]), a sixty-fourth of the
//! cap per shard. A decision that needs a new key in a full shard sweeps it (at most once a
//! second of the clock, since a sweep reads the whole shard and a flood of new keys would
//! otherwise pay for one on every request) and, if nothing could be forgotten, fails with
//! [`StoreError::Full`], so that the rule's failure policy answers (open or closed), as it does
//! when a full Redis under `noeviction` refuses a write. Keys already known keep being decided
//! exactly. Evicting a live key instead (an LRU) was rejected for the reason the Redis store
//! warns against eviction: a forgotten key is a client whose limit starts again, so a flood of
//! made-up keys would hand capacity back to the clients being limited.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use platform::clock::Clock;

use super::{Check, Decision, Store, StoreError};
use crate::algorithm::{Algorithm, Nanos, State};

const SHARDS: usize = 64;
const MIN_SWEEP_LEN: usize = 1024;
/// How often a full shard sweeps, at most, in nanoseconds of the store's clock.
const FULL_SWEEP_EVERY: Nanos = 1_000_000_000;

pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
    max_keys: usize,
}

struct Shard {
    entries: HashMap<String, Entry>,
    sweep_at_len: usize,
    /// Keys this shard holds at most.
    max_len: usize,
    /// When a full shard may sweep again.
    next_full_sweep: Nanos,
}

struct Entry {
    state: State,
    /// When the state stops mattering and may be dropped.
    forget_at: Nanos,
}

impl MemoryStore {
    /// Live keys a store made by [`MemoryStore::new`] remembers at most: one instance's active
    /// clients. A token bucket's key is a few dozen bytes and its name; a sliding log's holds up
    /// to its limit's timestamps, so the cap bounds memory by the rules' own sizes too.
    pub const DEFAULT_MAX_KEYS: usize = 100_000;

    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_max_keys(clock, Self::DEFAULT_MAX_KEYS)
    }

    /// A store that remembers at most `max_keys` live keys (rounded up to a multiple of the 64
    /// shards).
    pub fn with_max_keys(clock: Arc<dyn Clock>, max_keys: usize) -> Self {
        let max_len = max_keys.div_ceil(SHARDS).max(1);
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: HashMap::new(),
                        sweep_at_len: MIN_SWEEP_LEN,
                        max_len,
                        next_full_sweep: 0,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            clock,
            max_keys: max_len * SHARDS,
        }
    }

    /// The decision itself, synchronous: the HTTP layer and the benchmarks call it without a
    /// runtime in between.
    ///
    /// The clock is read once the locks are held, so that the decisions on one key see time
    /// move forward in the order they are made.
    ///
    /// Fails only when a check would spend on a key the store does not know and its shard is
    /// full ([`StoreError::Full`]); then nothing is spent on any key.
    pub fn decide_now(&self, checks: &[Check<'_>]) -> Result<Vec<Decision>, StoreError> {
        if let [check] = checks {
            // One rule, the common case: one lock, and no lock-order bookkeeping.
            let key = storage_key(check);
            let mut shard = self.shards[self.hasher.hash_one(&key) as usize % SHARDS]
                .lock()
                .expect("a shard lock is never poisoned");
            let now = unix_nanos(self.clock.as_ref());
            let new_keys = usize::from(check.units > 0 && !shard.entries.contains_key(&key));
            if !shard.make_room(new_keys, now) {
                return Err(self.full());
            }
            let verdict = check
                .algorithm
                .check(shard.state(&key, now), now, check.units.max(1));
            let admitted = verdict.is_ok() || !check.enforced;
            return Ok(vec![shard.settle(&key, check, verdict, admitted, now)]);
        }
        let keys: Vec<String> = checks.iter().map(storage_key).collect();
        let shard_of: Vec<usize> = keys
            .iter()
            .map(|key| self.hasher.hash_one(key) as usize % SHARDS)
            .collect();
        let mut order = shard_of.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<MutexGuard<'_, Shard>> = order
            .iter()
            .map(|&index| {
                self.shards[index]
                    .lock()
                    .expect("a shard lock is never poisoned")
            })
            .collect();
        let slot = |check: usize| order.binary_search(&shard_of[check]).expect("locked above");
        let now = unix_nanos(self.clock.as_ref());

        // Room for every key this request may add, before anything is decided or spent.
        for (locked, guard) in guards.iter_mut().enumerate() {
            let new_keys = checks
                .iter()
                .enumerate()
                .filter(|&(i, check)| {
                    slot(i) == locked && check.units > 0 && !guard.entries.contains_key(&keys[i])
                })
                .count();
            if !guard.make_room(new_keys, now) {
                return Err(self.full());
            }
        }

        // Phase 1: decide every check against the state as it is.
        let verdicts: Vec<Result<(), Duration>> = checks
            .iter()
            .enumerate()
            .map(|(i, check)| {
                let state = guards[slot(i)].state(&keys[i], now);
                check.algorithm.check(state, now, check.units.max(1))
            })
            .collect();
        let admitted = checks
            .iter()
            .zip(&verdicts)
            .all(|(check, verdict)| verdict.is_ok() || !check.enforced);

        // Phase 2: spend, only if the request as a whole is admitted; then report.
        Ok(checks
            .iter()
            .zip(verdicts)
            .enumerate()
            .map(|(i, (check, verdict))| {
                guards[slot(i)].settle(&keys[i], check, verdict, admitted, now)
            })
            .collect())
    }

    fn full(&self) -> StoreError {
        StoreError::Full {
            max_keys: self.max_keys,
        }
    }

    /// Keys currently remembered, across every shard.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().expect("never poisoned").entries.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shard {
    /// Whether `new_keys` more keys fit, after forgetting what may be forgotten if the shard is
    /// full and has not swept within [`FULL_SWEEP_EVERY`].
    fn make_room(&mut self, new_keys: usize, now: Nanos) -> bool {
        let fits = |shard: &Self| shard.entries.len() + new_keys <= shard.max_len;
        if new_keys == 0 || fits(self) {
            return true;
        }
        if now >= self.next_full_sweep {
            self.sweep(now);
            self.next_full_sweep = now.saturating_add(FULL_SWEEP_EVERY);
        }
        fits(self)
    }

    /// Drops every key whose state means the same as no state.
    fn sweep(&mut self, now: Nanos) {
        self.entries.retain(|_, entry| entry.forget_at > now);
        self.sweep_at_len = (self.entries.len() * 2).max(MIN_SWEEP_LEN);
    }

    fn state(&self, key: &str, now: Nanos) -> Option<&State> {
        self.entries
            .get(key)
            .filter(|entry| entry.forget_at > now)
            .map(|entry| &entry.state)
    }

    /// Phase 2 for one check: spends if the request as a whole was `admitted` and this check
    /// allowed it, and reports.
    fn settle(
        &mut self,
        key: &str,
        check: &Check<'_>,
        verdict: Result<(), Duration>,
        admitted: bool,
        now: Nanos,
    ) -> Decision {
        let algorithm = check.algorithm;
        let before = self.state(key, now);
        let delay = match verdict {
            Ok(()) => algorithm.delay(before, now),
            Err(_) => Duration::ZERO,
        };
        let status = if admitted && verdict.is_ok() && check.units > 0 {
            let after = self.spend(key, algorithm, now, check.units);
            algorithm.status(Some(after), now)
        } else {
            algorithm.status(before, now)
        };
        Decision {
            allowed: verdict.is_ok(),
            status,
            retry_after: verdict.err().unwrap_or_default(),
            delay,
        }
    }

    /// Records `units` spent and returns the new state. An existing entry is updated in place,
    /// so that the common case costs one lookup and no allocation.
    fn spend(&mut self, key: &str, algorithm: &Algorithm, now: Nanos, units: u64) -> &State {
        if self.entries.len() >= self.sweep_at_len {
            self.sweep(now);
        }
        if !self.entries.contains_key(key) {
            // `forget_at: 0` reads as no state. (Inserting first and updating below keeps one
            // path; `get_mut` then `insert` in one `match` is refused by the borrow checker.)
            let placeholder = Entry {
                state: State::Tat(0),
                forget_at: 0,
            };
            self.entries.insert(key.to_owned(), placeholder);
        }
        let entry = self.entries.get_mut(key).expect("inserted above");
        let live = entry.forget_at > now;
        // Moved out into `spend`, so that a log is not cloned; the placeholder never shows.
        let previous = std::mem::replace(&mut entry.state, State::Tat(0));
        entry.state = algorithm.spend(live.then_some(previous), now, units);
        entry.forget_at = now + algorithm.forget_after(&entry.state, now).as_nanos() as u64;
        &entry.state
    }
}

/// Rule and key in one string; the separator cannot appear in a rule name.
fn storage_key(check: &Check<'_>) -> String {
    let mut key = String::with_capacity(check.rule.len() + 1 + check.key.len());
    key.push_str(check.rule);
    key.push('\u{1f}');
    key.push_str(check.key);
    key
}

pub(crate) fn unix_nanos(clock: &dyn Clock) -> Nanos {
    u64::try_from(clock.now().unix_timestamp_nanos()).expect("the clock is after 1970")
}

#[async_trait]
impl Store for MemoryStore {
    async fn decide(&self, checks: &[Check<'_>]) -> Result<Vec<Decision>, StoreError> {
        self.decide_now(checks)
    }

    fn backend(&self) -> &'static str {
        "memory"
    }

    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn is_remote(&self) -> bool {
        false
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use platform::clock::ManualClock;

    use super::*;
    use crate::algorithm::TokenBucket;

    #[test]
    fn keys_whose_state_no_longer_matters_are_swept_away() {
        let clock = ManualClock::starting_now();
        let store = MemoryStore::with_max_keys(Arc::new(clock.clone()), 1_000_000);
        let bucket =
            Algorithm::TokenBucket(TokenBucket::new(1, Duration::from_secs(1), 1).unwrap());
        let spend = |key: &str| {
            let check = Check {
                rule: "r",
                algorithm: &bucket,
                key,
                units: 1,
                enforced: true,
            };
            assert!(store.decide_now(&[check]).unwrap()[0].allowed);
        };

        // Enough keys that every shard passes its first sweep threshold (1,024 entries).
        for i in 0..100_000 {
            spend(&format!("old:{i}"));
        }
        // Every old bucket is full again after a second: nothing about them is worth keeping.
        clock.advance(Duration::from_secs(2));
        for i in 0..100_000 {
            spend(&format!("new:{i}"));
        }

        assert!(store.len() < 150_000, "{} keys kept", store.len());
    }

    /// One unit an hour, two at once: a key spent once has one unit left, and is remembered
    /// for an hour.
    fn hourly() -> Algorithm {
        Algorithm::TokenBucket(TokenBucket::new(1, Duration::from_secs(3600), 2).unwrap())
    }

    fn spend<'a>(algorithm: &'a Algorithm, key: &'a str) -> Check<'a> {
        Check {
            rule: "r",
            algorithm,
            key,
            units: 1,
            enforced: true,
        }
    }

    #[test]
    fn a_flood_of_new_keys_never_grows_the_store_past_its_bound() {
        let store = MemoryStore::with_max_keys(Arc::new(ManualClock::starting_now()), 64 * 16);
        let hourly = hourly();

        for i in 0..10_000 {
            let _ = store.decide_now(&[spend(&hourly, &format!("flood:{i}"))]);
        }

        assert!(store.len() <= 64 * 16, "{} keys kept", store.len());
    }

    #[test]
    fn a_full_store_refuses_new_keys_and_still_limits_the_keys_it_knows() {
        // Arrange: ten thousand keys offered to a store of 1,024, so that every shard is full.
        let clock = ManualClock::starting_now();
        let store = MemoryStore::with_max_keys(Arc::new(clock.clone()), 64 * 16);
        let hourly = hourly();
        let mut known = Vec::new();
        for i in 0..10_000 {
            let key = format!("k{i}");
            match store.decide_now(&[spend(&hourly, &key)]) {
                Ok(decisions) => {
                    assert!(decisions[0].allowed);
                    known.push(key);
                }
                Err(StoreError::Full { max_keys }) => assert_eq!(max_keys, 64 * 16),
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(known.len(), 64 * 16);

        // Act and assert: a request that needs a new key is refused as a whole, and spends
        // nothing on the key it knows, whose one unit left is then spent and its limit held.
        let with_a_new_key = [spend(&hourly, &known[0]), spend(&hourly, "new")];
        assert!(store.decide_now(&with_a_new_key).is_err());
        assert!(store.decide_now(&[spend(&hourly, &known[0])]).unwrap()[0].allowed);
        assert!(!store.decide_now(&[spend(&hourly, &known[0])]).unwrap()[0].allowed);

        // Once the known keys' state no longer matters, new keys are remembered again.
        clock.advance(Duration::from_secs(2 * 3600));
        assert!(store.decide_now(&[spend(&hourly, "after")]).unwrap()[0].allowed);
    }
}
