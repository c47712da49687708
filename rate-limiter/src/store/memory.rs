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

pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
}

struct Shard {
    entries: HashMap<String, Entry>,
    sweep_at_len: usize,
}

struct Entry {
    state: State,
    /// When the state stops mattering and may be dropped.
    forget_at: Nanos,
}

impl MemoryStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: HashMap::new(),
                        sweep_at_len: MIN_SWEEP_LEN,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            clock,
        }
    }

    /// The decision itself, synchronous: the HTTP layer and the benchmarks call it without a
    /// runtime in between.
    ///
    /// The clock is read once the locks are held, so that the decisions on one key see time
    /// move forward in the order they are made.
    pub fn decide_now(&self, checks: &[Check<'_>]) -> Vec<Decision> {
        if let [check] = checks {
            // One rule, the common case: one lock, and no lock-order bookkeeping.
            let key = storage_key(check);
            let mut shard = self.shards[self.hasher.hash_one(&key) as usize % SHARDS]
                .lock()
                .expect("a shard lock is never poisoned");
            let now = unix_nanos(self.clock.as_ref());
            let verdict = check
                .algorithm
                .check(shard.state(&key, now), now, check.units.max(1));
            let admitted = verdict.is_ok() || !check.enforced;
            return vec![shard.settle(&key, check, verdict, admitted, now)];
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
        checks
            .iter()
            .zip(verdicts)
            .enumerate()
            .map(|(i, (check, verdict))| {
                guards[slot(i)].settle(&keys[i], check, verdict, admitted, now)
            })
            .collect()
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
            self.entries.retain(|_, entry| entry.forget_at > now);
            self.sweep_at_len = (self.entries.len() * 2).max(MIN_SWEEP_LEN);
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
        Ok(self.decide_now(checks))
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
        let store = MemoryStore::new(Arc::new(clock.clone()));
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
            assert!(store.decide_now(&[check])[0].allowed);
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
}
