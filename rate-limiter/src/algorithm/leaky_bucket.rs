//! Leaky bucket as a queue: admitted requests leave at a steady rate.
//!
//! The bucket holds up to `capacity` requests and leaks one every `interval`. Deciding whether a
//! request fits is the same arithmetic as GCRA (the "leaky bucket as a meter" *is* GCRA, see
//! [`super::TokenBucket`]), so this module reuses it. What differs is what happens to an admitted
//! request: the token bucket lets it through at once, so a full bucket's burst reaches the
//! upstream all together; the leaky bucket holds it until its turn to leak out, so the upstream
//! sees at most one request per interval, ever. That is traffic *shaping* (NGINX's `limit_req`
//! without `nodelay`), against the token bucket's *policing*. [`LeakyBucket::delay`] is the wait,
//! returned with every decision; the gateway sleeps it before forwarding, a caller of the decision
//! API is told it in `delay_ms`.
//!
//! A rejected request (the queue is full) spends nothing.

use std::time::Duration;

use super::{InvalidAlgorithm, Nanos, TokenBucket};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeakyBucket(TokenBucket);

impl LeakyBucket {
    /// Leaks `rate` requests every `per`, queueing at most `capacity`.
    pub fn new(rate: u64, per: Duration, capacity: u64) -> Result<Self, InvalidAlgorithm> {
        TokenBucket::new(rate, per, capacity)
            .map(Self)
            .map_err(|InvalidAlgorithm(reason)| {
                InvalidAlgorithm(match reason {
                    "the burst must be at least 1" => "the capacity must be at least 1",
                    other => other,
                })
            })
    }

    pub fn interval(&self) -> Nanos {
        self.0.interval
    }

    pub fn capacity(&self) -> u64 {
        self.0.burst
    }

    pub fn tolerance(&self) -> Nanos {
        self.0.tolerance()
    }

    pub fn check(&self, tat: Option<Nanos>, now: Nanos, units: u64) -> Nanos {
        self.0.check(tat, now, units)
    }

    pub fn spend(&self, tat: Option<Nanos>, now: Nanos, units: u64) -> Nanos {
        self.0.spend(tat, now, units)
    }

    pub fn status(&self, tat: Option<Nanos>, now: Nanos) -> (u64, Nanos) {
        self.0.status(tat, now)
    }

    /// How long a request admitted now waits for the requests queued ahead of it to leak out.
    pub fn delay(&self, tat: Option<Nanos>, now: Nanos) -> Nanos {
        tat.unwrap_or(now).saturating_sub(now)
    }
}
