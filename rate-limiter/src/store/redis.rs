//! The Redis store: one `EVALSHA` of `lua/limiter.lua` per decision, whatever the number of rules.
//!
//! Why a script: the decision is a read, a computation and a write, and two instances doing that
//! concurrently with plain commands would both read "one left" and both spend it. `INCR` then
//! `EXPIRE` (what envoyproxy/ratelimit pipelines) is atomic for a fixed window only; `WATCH`/
//! `MULTI` retries under contention. A script runs to completion before Redis serves anything
//! else, so the read-decide-write is atomic for every algorithm and for every rule of a request
//! at once, in one round trip.
//!
//! Why Redis's clock: instances whose clocks disagree by 50 ms would disagree about which window
//! a request falls in and when a bucket refills; with `TIME` inside the script there is one clock
//! for every instance. ([`RedisStore::with_clock`] passes the time in instead, for tests only.)
//!
//! Keys: `{namespace}rl:{rule}:{algorithm}:{<client key>}`. The client key is the hash tag, so
//! on Redis Cluster every rule's state for one client lands in the same slot, which a script
//! touching several keys needs. The algorithm is in the key because each one stores a different
//! Redis type: a rule edited to another algorithm starts from fresh keys instead of failing with
//! `WRONGTYPE`.
//!
//! Every key has a TTL of at least the time its state takes to mean "full capacity", so an
//! expiry never hands out capacity early. Eviction would: if Redis's `maxmemory-policy` can evict
//! our keys, a full Redis silently resets limits. [`RedisStore::connect`] reads the policy and
//! reports it (see [`EvictionPolicy`]).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use platform::clock::Clock;
use redis::{
    Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::{Check, Decision, Store, StoreError};
use crate::algorithm::{Algorithm, Status};

static SCRIPT: &str = include_str!("lua/limiter.lua");

#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    script: Arc<Script>,
    namespace: String,
    clock: Option<Arc<dyn Clock>>,
}

/// What Redis does when it runs out of memory, as far as our keys are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvictionPolicy {
    /// `noeviction`: writes fail instead, and each rule's failure policy applies. Limits hold.
    Safe,
    /// `allkeys-*` or `volatile-*` (all our keys have a TTL): a key evicted under memory
    /// pressure is a client whose limit silently starts again.
    Evicts(String),
    /// `CONFIG GET` is refused (many managed Redis services): we cannot tell.
    Unknown,
}

impl EvictionPolicy {
    pub fn from_config(policy: &str) -> Self {
        match policy {
            "noeviction" => EvictionPolicy::Safe,
            other => EvictionPolicy::Evicts(other.to_owned()),
        }
    }
}

impl RedisStore {
    /// Connects, loads the script, and reads Redis's eviction policy.
    pub async fn connect(
        url: &str,
        namespace: impl Into<String>,
    ) -> Result<(Self, EvictionPolicy), StoreError> {
        let client = redis::Client::open(url)?;
        // No retries and a response timeout: a decision waits for Redis at most as long as its
        // rules allow (the limiter wraps each call in the rules' own timeout), and a dead Redis
        // must fail fast so the failure policy can answer.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        let connection = client.get_connection_manager_with_config(config).await?;
        let store = Self {
            connection,
            script: Arc::new(Script::new(SCRIPT)),
            namespace: namespace.into(),
            clock: None,
        };
        let mut connection = store.connection.clone();
        store.script.load_async(&mut connection).await?;
        let policy: Result<Vec<String>, _> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut connection)
            .await;
        let policy = match policy {
            Ok(pair) if pair.len() == 2 => EvictionPolicy::from_config(&pair[1]),
            _ => EvictionPolicy::Unknown,
        };
        Ok((store, policy))
    }

    /// Decides with time from `clock` rather than from Redis: for tests that need to place
    /// requests at exact instants. Production never calls this.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    fn key(&self, check: &Check<'_>) -> String {
        format!(
            "{}rl:{}:{}:{{{}}}",
            self.namespace,
            check.rule,
            check.algorithm.name(),
            check.key
        )
    }
}

/// The script's name and two parameters for an algorithm, in microseconds.
fn script_args(algorithm: &Algorithm) -> (&'static str, u64, u64) {
    let micros = |nanos: u64| nanos.div_ceil(1000);
    match algorithm {
        Algorithm::TokenBucket(a) => ("tb", micros(a.interval), a.burst),
        Algorithm::LeakyBucket(a) => ("lb", micros(a.interval()), a.capacity()),
        Algorithm::FixedWindow(a) => ("fw", micros(a.window), a.limit),
        Algorithm::SlidingLog(a) => ("sl", micros(a.window), a.limit),
        Algorithm::SlidingCounter(a) => ("sc", micros(a.window), a.limit),
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.namespace)
            .finish()
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn decide(&self, checks: &[Check<'_>]) -> Result<Vec<Decision>, StoreError> {
        let mut invocation = self.script.prepare_invoke();
        match &self.clock {
            Some(clock) => invocation.arg(super::memory::unix_nanos(clock.as_ref()) / 1000),
            None => invocation.arg(""),
        };
        invocation.arg(checks.len());
        for check in checks {
            let (kind, a, b) = script_args(check.algorithm);
            invocation
                .key(self.key(check))
                .arg(kind)
                .arg(a)
                .arg(b)
                .arg(check.units)
                .arg(u8::from(check.enforced));
        }
        let mut connection = self.connection.clone();
        let reply: Vec<i64> = invocation.invoke_async(&mut connection).await?;
        if reply.len() != checks.len() * 5 {
            return Err(StoreError::Protocol(format!(
                "{} integers for {} checks",
                reply.len(),
                checks.len()
            )));
        }
        let micros = |value: i64| Duration::from_micros(value.max(0) as u64);
        Ok(reply
            .chunks_exact(5)
            .map(|fields| Decision {
                allowed: fields[0] == 1,
                status: Status {
                    remaining: fields[1].max(0) as u64,
                    reset_after: micros(fields[2]),
                },
                retry_after: micros(fields[3]),
                delay: micros(fields[4]),
            })
            .collect())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    fn resolution(&self) -> Duration {
        Duration::from_micros(1)
    }

    fn is_remote(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _pong: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(())
    }
}
