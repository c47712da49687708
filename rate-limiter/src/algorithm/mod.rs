//! The five algorithms, as pure functions of (state, now, cost).
//!
//! Every algorithm answers the same three questions about one key:
//! - [`Algorithm::check`]: may `units` be spent at `now`, and if not, how long until they may;
//! - [`Algorithm::spend`]: record that they were;
//! - [`Algorithm::status`]: how many units are left and how long until the key is back to full
//!   capacity.
//!
//! Checking and spending are separate so that a request governed by several rules is
//! all-or-nothing: every rule is checked first, and only if none rejects is anything spent
//! ([`crate::store`]). A rejected request spends nothing under any algorithm here; a client that
//! keeps retrying while rejected is not pushed further back. (Some implementations do count
//! rejections, which punishes hammering but lets a retry loop lock a client out forever; the
//! concurrency of our stores makes "rejected costs nothing" the rule that composes.)
//!
//! Time is an integer count of nanoseconds since the Unix epoch, passed in, never read here: the
//! in-process store reads it from a [`platform::clock::Clock`], the Redis store from Redis's `TIME`
//! (see `lua/limiter.lua`, which implements the same arithmetic in microseconds). Integers keep
//! the answers exact: a test can show that capacity returns at the computed instant and not one
//! nanosecond before.

mod fixed_window;
mod gcra;
mod leaky_bucket;
mod sliding_counter;
mod sliding_log;

use std::time::Duration;

pub use fixed_window::FixedWindow;
pub use gcra::TokenBucket;
pub use leaky_bucket::LeakyBucket;
pub use sliding_counter::SlidingCounter;
pub use sliding_log::{Log, SlidingLog};

/// Nanoseconds since the Unix epoch.
pub type Nanos = u64;

/// One rule's algorithm and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Algorithm {
    TokenBucket(TokenBucket),
    LeakyBucket(LeakyBucket),
    FixedWindow(FixedWindow),
    SlidingLog(SlidingLog),
    SlidingCounter(SlidingCounter),
}

/// What a key remembers between decisions. A key with no state is at full capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Token and leaky bucket: the theoretical arrival time of the next unit (GCRA's TAT).
    Tat(Nanos),
    /// Fixed window: which window, and the units spent in it.
    Window { index: u64, spent: u64 },
    /// Sliding log: when each unit still in the window was spent.
    Log(Log),
    /// Sliding counter: the current window and the units spent in it and in the one before.
    Counters {
        index: u64,
        current: u64,
        previous: u64,
    },
}

/// Units left and the time until the key is back to full capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub remaining: u64,
    pub reset_after: Duration,
}

/// Parameters that cannot describe a limit (a zero rate, a zero window).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAlgorithm(pub &'static str);

impl Algorithm {
    /// The algorithm's name in configuration files and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::TokenBucket(_) => "token_bucket",
            Algorithm::LeakyBucket(_) => "leaky_bucket",
            Algorithm::FixedWindow(_) => "fixed_window",
            Algorithm::SlidingLog(_) => "sliding_log",
            Algorithm::SlidingCounter(_) => "sliding_counter",
        }
    }

    /// The most units a key can ever spend at once: a larger cost can never be admitted.
    pub fn capacity(&self) -> u64 {
        match self {
            Algorithm::TokenBucket(a) => a.burst,
            Algorithm::LeakyBucket(a) => a.capacity(),
            Algorithm::FixedWindow(a) => a.limit,
            Algorithm::SlidingLog(a) => a.limit,
            Algorithm::SlidingCounter(a) => a.limit,
        }
    }

    /// The time a key takes to go from empty to full capacity, as the `w` of the
    /// `RateLimit-Policy` header.
    pub fn window(&self) -> Duration {
        match self {
            Algorithm::TokenBucket(a) => Duration::from_nanos(a.tolerance()),
            Algorithm::LeakyBucket(a) => Duration::from_nanos(a.tolerance()),
            Algorithm::FixedWindow(a) => Duration::from_nanos(a.window),
            Algorithm::SlidingLog(a) => Duration::from_nanos(a.window),
            Algorithm::SlidingCounter(a) => Duration::from_nanos(a.window),
        }
    }

    /// `Ok` if `units` may be spent now; otherwise the time until they may.
    ///
    /// Never called with more units than [`Algorithm::capacity`]; the limiter answers such a
    /// request as a permanent error before asking.
    pub fn check(&self, state: Option<&State>, now: Nanos, units: u64) -> Result<(), Duration> {
        debug_assert!(units <= self.capacity(), "checked by the limiter");
        let wait = match self {
            Algorithm::TokenBucket(a) => a.check(tat(state), now, units),
            Algorithm::LeakyBucket(a) => a.check(tat(state), now, units),
            Algorithm::FixedWindow(a) => a.check(window(state), now, units),
            Algorithm::SlidingLog(a) => a.check(log(state), now, units),
            Algorithm::SlidingCounter(a) => a.check(counters(state), now, units),
        };
        match wait {
            0 => Ok(()),
            nanos => Err(Duration::from_nanos(nanos)),
        }
    }

    /// Records `units` spent at `now`; only called after [`Algorithm::check`] allowed them.
    pub fn spend(&self, state: Option<State>, now: Nanos, units: u64) -> State {
        match self {
            Algorithm::TokenBucket(a) => State::Tat(a.spend(tat(state.as_ref()), now, units)),
            Algorithm::LeakyBucket(a) => State::Tat(a.spend(tat(state.as_ref()), now, units)),
            Algorithm::FixedWindow(a) => {
                let (index, spent) = a.spend(window(state.as_ref()), now, units);
                State::Window { index, spent }
            }
            Algorithm::SlidingLog(a) => {
                let mut entries = match state {
                    Some(State::Log(entries)) => entries,
                    _ => Log::default(),
                };
                a.spend(&mut entries, now, units);
                State::Log(entries)
            }
            Algorithm::SlidingCounter(a) => {
                let (index, current, previous) = a.spend(counters(state.as_ref()), now, units);
                State::Counters {
                    index,
                    current,
                    previous,
                }
            }
        }
    }

    pub fn status(&self, state: Option<&State>, now: Nanos) -> Status {
        let (remaining, reset_after) = match self {
            Algorithm::TokenBucket(a) => a.status(tat(state), now),
            Algorithm::LeakyBucket(a) => a.status(tat(state), now),
            Algorithm::FixedWindow(a) => a.status(window(state), now),
            Algorithm::SlidingLog(a) => a.status(log(state), now),
            Algorithm::SlidingCounter(a) => a.status(counters(state), now),
        };
        Status {
            remaining,
            reset_after: Duration::from_nanos(reset_after),
        }
    }

    /// How long an admitted request is held before it goes ahead: always zero, except for the
    /// leaky bucket, which shapes traffic to a steady rate instead of only policing it.
    pub fn delay(&self, state: Option<&State>, now: Nanos) -> Duration {
        match self {
            Algorithm::LeakyBucket(a) => Duration::from_nanos(a.delay(tat(state), now)),
            _ => Duration::ZERO,
        }
    }

    /// The time after which `state` means the same as no state at all, so that a store may
    /// forget it: the time until full capacity, and for the windowed algorithms until the
    /// windows that still count have ended. The Redis keys get the same TTL.
    pub fn forget_after(&self, state: &State, now: Nanos) -> Duration {
        let nanos = match self {
            Algorithm::SlidingCounter(a) => a.forget_after(counters(Some(state)), now),
            _ => self.status(Some(state), now).reset_after.as_nanos() as u64,
        };
        Duration::from_nanos(nanos)
    }
}

// A state of another algorithm's shape (the rule was edited to use a different algorithm while
// keys were live) reads as no state: the key starts afresh once, under its new algorithm.

fn tat(state: Option<&State>) -> Option<Nanos> {
    match state {
        Some(State::Tat(tat)) => Some(*tat),
        _ => None,
    }
}

fn window(state: Option<&State>) -> Option<(u64, u64)> {
    match state {
        Some(State::Window { index, spent }) => Some((*index, *spent)),
        _ => None,
    }
}

fn log(state: Option<&State>) -> Option<&Log> {
    match state {
        Some(State::Log(entries)) => Some(entries),
        _ => None,
    }
}

fn counters(state: Option<&State>) -> Option<(u64, u64, u64)> {
    match state {
        Some(State::Counters {
            index,
            current,
            previous,
        }) => Some((*index, *current, *previous)),
        _ => None,
    }
}

/// The longest window or refill time a rule may have. Far beyond any real limit, and it keeps
/// every sum of timestamps in range, here and in Redis's Lua (whose numbers are doubles, exact
/// up to 2^53).
pub const MAX_WINDOW: Nanos = 366 * 24 * 3600 * 1_000_000_000;

/// A duration as whole nanoseconds, refusing zero and the absurdly long.
fn positive_nanos(duration: Duration, what: &'static str) -> Result<u64, InvalidAlgorithm> {
    match u64::try_from(duration.as_nanos()) {
        Ok(0) => Err(InvalidAlgorithm(what)),
        Ok(nanos) => Ok(nanos),
        Err(_) => Err(InvalidAlgorithm("durations must be under 500 years")),
    }
}

#[cfg(test)]
pub(crate) mod tests;
