//! The in-process store: each key's state in one of 64 mutex-guarded shards.
//!
//! A decision locks the shards of its keys (in index order, so that two multi-rule requests can
//! never wait on each other), decides every check, spends only if none of the enforced ones
//! rejected, and unlocks. A `std::sync::Mutex` is right here, as mini-redis argues for its
//! `db.rs`: the critical section is a map lookup and some integer arithmetic, never an `.await`,
//! and sharding keeps two cores from queueing on the same lock. (governor's keyed limiter goes
//! further, a lock-free `AtomicU64` per key on a `DashMap`; it cannot spend across several rules
//! atomically, which we need. `benches/decisions.rs` measures both.)
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
    pub fn decide_now(&self, checks: &[Check<'_>]) -> Vec<Decision> {
        let now = unix_nanos(self.clock.as_ref());
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
                let shard = &mut guards[slot(i)];
                let delay = check.algorithm.delay(shard.state(&keys[i], now), now);
                if admitted && verdict.is_ok() && check.units > 0 {
                    shard.spend(&keys[i], check.algorithm, now, check.units);
                }
                Decision {
                    allowed: verdict.is_ok(),
                    status: check.algorithm.status(shard.state(&keys[i], now), now),
                    retry_after: verdict.err().unwrap_or_default(),
                    delay: if verdict.is_ok() {
                        delay
                    } else {
                        Duration::ZERO
                    },
                }
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

    fn spend(&mut self, key: &str, algorithm: &Algorithm, now: Nanos, units: u64) {
        let previous = self
            .entries
            .remove(key)
            .filter(|entry| entry.forget_at > now)
            .map(|entry| entry.state);
        let state = algorithm.spend(previous, now, units);
        let forget_at = now + algorithm.forget_after(&state, now).as_nanos() as u64;
        self.entries
            .insert(key.to_owned(), Entry { state, forget_at });
        if self.entries.len() >= self.sweep_at_len {
            self.entries.retain(|_, entry| entry.forget_at > now);
            self.sweep_at_len = (self.entries.len() * 2).max(MIN_SWEEP_LEN);
        }
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
