//! Where the limiter's state lives: in process, or in Redis shared by every instance.
//!
//! A [`Store`] decides a batch of [`Check`]s (one per rule that applies to a request) at one
//! instant and atomically: every check is decided against the current state, and only if none of
//! the enforced ones rejects is anything spent. So a request that one rule rejects costs the other
//! rules nothing, and two instances racing for the last unit cannot both get it.
//!
//! - [`MemoryStore`]: sharded maps behind mutexes, time from a [`platform::clock::Clock`].
//! - [`RedisStore`]: one Lua script (`lua/limiter.lua`) decides each request, several requests per
//!   call under load; time from Redis's `TIME`.
//!
//! Both run the same arithmetic ([`crate::algorithm`]), and `tests/api/exactness.rs` runs one
//! suite against whichever `REDIS_URL` selects. Whichever it is, `app.rs` puts it behind the
//! `redis` fault switch ([`FaultyStore`]).

mod faulty;
mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;

pub use self::faulty::FaultyStore;
pub use self::memory::MemoryStore;
pub use self::redis::{EvictionPolicy, RedisStore};
use crate::algorithm::{Algorithm, Status};

/// One rule's question about one key.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// The rule's name: keys of different rules never share state.
    pub rule: &'a str,
    pub algorithm: &'a Algorithm,
    /// The client the rule counts for: `user:42`, an IP address…
    pub key: &'a str,
    /// Units to spend; 0 asks whether one unit would be admitted and spends nothing.
    pub units: u64,
    /// `false` for a rule in shadow mode: decided and reported, never able to reject.
    pub enforced: bool,
}

/// The store's answer to one [`Check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether this rule admits the request. The request goes ahead only if every enforced rule
    /// admits it, and only then is anything spent.
    pub allowed: bool,
    /// Units left and time to full capacity, after the spending if there was any.
    pub status: Status,
    /// For a rejection: the time until the same request would be admitted. Zero otherwise.
    pub retry_after: Duration,
    /// For an admitted request, how long to hold it before it goes ahead (leaky bucket only).
    pub delay: Duration,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("redis answered something the limiter did not expect: {0}")]
    Protocol(String),
    #[error("too many decisions are waiting for Redis")]
    Overloaded,
    #[error("the in-process store holds its maximum of {max_keys} live keys")]
    Full { max_keys: usize },
    /// The `redis` fault switch is on (see [`FaultyStore`]).
    #[error(transparent)]
    Fault(#[from] platform::fault::Unreachable),
}

impl StoreError {
    /// The `kind` label of `ratelimit_store_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Redis(_) => "redis",
            Self::Protocol(_) => "protocol",
            Self::Overloaded => "overloaded",
            Self::Full { .. } => "full",
            Self::Fault(_) => "unreachable",
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Decides every check at one instant; spends only if every enforced check is allowed.
    async fn decide(&self, checks: &[Check<'_>]) -> Result<Vec<Decision>, StoreError>;

    /// `"memory"` or `"redis"`.
    fn backend(&self) -> &'static str;

    /// The smallest step of the store's clock: 1 ns in process, 1 µs for Redis's `TIME`.
    fn resolution(&self) -> Duration;

    /// Whether a decision costs a network round trip, so that remembering which keys are over
    /// their limit saves something (see [`crate::limiter`]).
    fn is_remote(&self) -> bool;

    /// Whether a decision may take long enough that the rules' timeouts must bound it: a remote
    /// store's may, and so may one behind a fault switch that adds latency. The limiter arms a
    /// timer only then, since an in-process decision cannot hang and a timer per decision is
    /// not free.
    fn may_stall(&self) -> bool {
        self.is_remote()
    }

    async fn ping(&self) -> Result<(), StoreError>;
}
