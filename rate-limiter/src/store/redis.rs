//! The Redis store: one `EVALSHA` of `lua/limiter.lua` decides a request, whatever the number of
//! rules, and concurrent requests share a call.
//!
//! Why a script: the decision is a read, a computation and a write, and two instances doing that
//! concurrently with plain commands would both read "one left" and both spend it. `INCR` then
//! `EXPIRE` (what envoyproxy/ratelimit pipelines) is atomic for a fixed window only; `WATCH`/
//! `MULTI` retries under contention. A script runs to completion before Redis serves anything
//! else, so the read-decide-write is atomic for every algorithm and for every rule of a request
//! at once, in one round trip.
//!
//! Why batches: a script call has a fixed cost in Redis (dispatch, and the script setting itself
//! up) that dwarfs one decision's arithmetic, so eight checks in one call go through several
//! times faster than eight calls of one (DESIGN.md §5 has the figures and the command). So
//! decisions are not sent one call each: a batcher task takes every request waiting when a call can go out and sends them
//! in one script call (group commit, as databases do for their log writes). A lone request goes
//! out at once, alone; under load, up to [`MAX_IN_FLIGHT`] calls are out and the requests that
//! arrive meanwhile form the next batch. No timer ever holds a request back. Each request stays
//! atomic on its own, all-or-nothing across its rules; requests in one batch are independent and
//! decided in arrival order.
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

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use async_trait::async_trait;
use platform::clock::Clock;
use redis::{
    RedisError, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{Check, Decision, Store, StoreError};
use crate::algorithm::{Algorithm, Status};

static SCRIPT: &str = include_str!("lua/limiter.lua");

/// Script calls out at once; the requests arriving meanwhile wait for the next call.
pub const MAX_IN_FLIGHT: usize = 4;
/// Requests per call, at most: a bound on how long one call holds Redis.
pub const MAX_BATCH: usize = 128;
/// Requests waiting for a call, at most. Beyond that Redis is not keeping up, and a request is
/// better answered by its rule's failure policy at once than queued behind thousands of others.
pub const MAX_WAITING: usize = 4096;

#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    namespace: String,
    requests: mpsc::Sender<Request>,
    /// Set only by [`RedisStore::with_clock`]; shared with the batcher, which reads the time.
    clock: Arc<OnceLock<Arc<dyn Clock>>>,
}

/// One request's checks, encoded, waiting for a call.
struct Request {
    keys: Vec<String>,
    checks: Vec<Encoded>,
    reply: oneshot::Sender<Result<Vec<Decision>, StoreError>>,
}

struct Encoded {
    kind: &'static str,
    a: u64,
    b: u64,
    units: u64,
    enforced: bool,
}

/// What Redis does when it runs out of memory, as far as our keys are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvictionPolicy {
    /// `noeviction`: writes fail instead, and each rule's failure policy applies: fail-closed
    /// rules hold their limits, fail-open ones admit while Redis is full.
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
        // Each decision waits at most its rules' own timeout (the limiter bounds every call, and
        // a rule's timeout is at most 1 s). The connection's response timeout frees a batch's
        // call slot when Redis hangs; one reconnection attempt, then errors, so that a dead
        // Redis fails fast and the failure policies answer.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        let connection = client.get_connection_manager_with_config(config).await?;
        let script = Script::new(SCRIPT);
        let mut loader = connection.clone();
        script.load_async(&mut loader).await?;
        let policy: Result<Vec<String>, _> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut loader)
            .await;
        let policy = match policy {
            Ok(pair) if pair.len() == 2 => EvictionPolicy::from_config(&pair[1]),
            _ => EvictionPolicy::Unknown,
        };

        let (requests, waiting) = mpsc::channel(MAX_WAITING);
        let clock = Arc::new(OnceLock::new());
        let batcher = Batcher {
            connection: connection.clone(),
            script: Arc::new(script),
            clock: clock.clone(),
            batch_size: {
                platform::metrics::install();
                metrics::histogram!("ratelimit_redis_batch_requests")
            },
        };
        tokio::spawn(batcher.run(waiting));
        let store = Self {
            connection,
            namespace: namespace.into(),
            requests,
            clock,
        };
        Ok((store, policy))
    }

    /// Decides with time from `clock` rather than from Redis: for tests that need to place
    /// requests at exact instants. Production never calls this.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        if self.clock.set(clock).is_err() {
            panic!("the store's clock is set once");
        }
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

/// Sends the waiting requests to Redis in batches, and each answer back to its caller.
struct Batcher {
    connection: ConnectionManager,
    script: Arc<Script>,
    clock: Arc<OnceLock<Arc<dyn Clock>>>,
    /// `ratelimit_redis_batch_requests`: requests per script call, to watch batching at work.
    batch_size: metrics::Histogram,
}

impl Batcher {
    /// Runs until every [`RedisStore`] clone is dropped.
    async fn run(self, mut waiting: mpsc::Receiver<Request>) {
        let calls = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let this = Arc::new(self);
        while let Some(first) = waiting.recv().await {
            // Wait for a free call *before* gathering: whatever arrives meanwhile joins this
            // batch instead of waiting behind it.
            let call = calls.clone().acquire_owned().await.expect("never closed");
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match waiting.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            // A caller that gave up (its rule's timeout passed) is not worth Redis's time.
            batch.retain(|request| !request.reply.is_closed());
            if batch.is_empty() {
                continue;
            }
            let this = this.clone();
            tokio::spawn(async move {
                this.call(batch).await;
                drop(call);
            });
        }
    }

    async fn call(&self, batch: Vec<Request>) {
        self.batch_size.record(batch.len() as f64);
        let mut invocation = self.script.prepare_invoke();
        match self.clock.get() {
            Some(clock) => invocation.arg(super::memory::unix_nanos(clock.as_ref()) / 1000),
            None => invocation.arg(""),
        };
        invocation.arg(batch.len());
        for request in &batch {
            invocation.arg(request.checks.len());
            for (key, check) in request.keys.iter().zip(&request.checks) {
                invocation
                    .key(key)
                    .arg(check.kind)
                    .arg(check.a)
                    .arg(check.b)
                    .arg(check.units)
                    .arg(u8::from(check.enforced));
            }
        }
        let mut connection = self.connection.clone();
        let reply: Result<Vec<i64>, RedisError> = invocation.invoke_async(&mut connection).await;
        let checks: usize = batch.iter().map(|request| request.checks.len()).sum();
        let reply = match reply {
            Ok(reply) if reply.len() == checks * 5 => reply,
            Ok(reply) => {
                let err =
                    StoreError::Protocol(format!("{} integers for {checks} checks", reply.len()));
                return answer_all(batch, &err);
            }
            Err(err) => return answer_all(batch, &StoreError::Redis(err)),
        };
        let mut fields = reply.chunks_exact(5).map(decision);
        for request in batch {
            let decisions = fields.by_ref().take(request.checks.len()).collect();
            // The caller may have given up meanwhile; its answer is dropped with the channel.
            let _ = request.reply.send(Ok(decisions));
        }
    }
}

fn answer_all(batch: Vec<Request>, err: &StoreError) {
    for request in batch {
        let _ = request.reply.send(Err(err.clone()));
    }
}

/// Five integers of the script's reply: allowed, remaining, reset, retry, delay (µs).
fn decision(fields: &[i64]) -> Decision {
    let micros = |value: i64| Duration::from_micros(value.max(0) as u64);
    Decision {
        allowed: fields[0] == 1,
        status: Status {
            remaining: fields[1].max(0) as u64,
            reset_after: micros(fields[2]),
        },
        retry_after: micros(fields[3]),
        delay: micros(fields[4]),
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn decide(&self, checks: &[Check<'_>]) -> Result<Vec<Decision>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            keys: checks.iter().map(|check| self.key(check)).collect(),
            checks: checks
                .iter()
                .map(|check| {
                    let (kind, a, b) = script_args(check.algorithm);
                    Encoded {
                        kind,
                        a,
                        b,
                        units: check.units,
                        enforced: check.enforced,
                    }
                })
                .collect(),
            reply,
        };
        let stopped = || StoreError::Protocol("the Redis batcher has stopped".into());
        self.requests.try_send(request).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => stopped(),
        })?;
        answer.await.map_err(|_| stopped())?
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
