//! Token bucket, as the generic cell rate algorithm (GCRA).
//!
//! A bucket of `burst` tokens refilled at one token every `interval` is the same limit as
//! GCRA's "theoretical arrival time": instead of a token count and a last-refill time, a key
//! stores one timestamp, the TAT, the moment at which the bucket would be full again if nothing
//! more were spent. Spending `n` tokens pushes the TAT `n × interval` later; the request is
//! admitted if the pushed TAT is no more than `burst × interval` (the tolerance) ahead of now.
//! One integer per key, no refill loop, and the arithmetic is exact, which is why governor and
//! redis-cell use it (see `DESIGN.md`).
//!
//! A rejected request spends nothing: the TAT only moves when tokens are spent.

use std::time::Duration;

use super::{InvalidAlgorithm, Nanos, positive_nanos};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Nanoseconds between two tokens.
    pub interval: Nanos,
    /// How many tokens the bucket holds.
    pub burst: u64,
}

impl TokenBucket {
    /// `rate` tokens every `per`, at most `burst` at once.
    ///
    /// The interval is rounded up to a whole microsecond, the resolution of Redis's clock, so
    /// that both stores enforce exactly the same limit; an inexact rate (3 per second) errs on
    /// the strict side by less than a microsecond per token, and a million per second per key
    /// is the fastest rate there is.
    pub fn new(rate: u64, per: Duration, burst: u64) -> Result<Self, InvalidAlgorithm> {
        if rate == 0 {
            return Err(InvalidAlgorithm("the rate must be at least 1"));
        }
        if burst == 0 {
            return Err(InvalidAlgorithm("the burst must be at least 1"));
        }
        let too_long = InvalidAlgorithm("burst × interval must be at most one year");
        // Checked: rounding a period within a microsecond of u64::MAX nanoseconds (584 years)
        // up to whole microseconds would wrap to a few hundred nanoseconds, and a limit of one a
        // lifetime would admit millions a second.
        let interval = positive_nanos(per, "the period must be longer than zero")?
            .div_ceil(rate)
            .div_ceil(1000)
            .checked_mul(1000)
            .ok_or(too_long.clone())?;
        interval
            .checked_mul(burst)
            .filter(|tolerance| *tolerance <= super::MAX_WINDOW)
            .ok_or(too_long)?;
        Ok(Self { interval, burst })
    }

    /// How far ahead of now the TAT may run: the time to refill an empty bucket.
    pub fn tolerance(&self) -> Nanos {
        self.interval * self.burst
    }

    /// Zero if `units` may be spent, otherwise the nanoseconds until they may.
    pub fn check(&self, tat: Option<Nanos>, now: Nanos, units: u64) -> Nanos {
        let next = self.spend(tat, now, units);
        let allowed_at = next.saturating_sub(self.tolerance());
        allowed_at.saturating_sub(now)
    }

    /// The TAT after spending `units`.
    pub fn spend(&self, tat: Option<Nanos>, now: Nanos, units: u64) -> Nanos {
        tat.unwrap_or(now).max(now) + units * self.interval
    }

    /// Whole tokens left, and the time until the bucket is full.
    pub fn status(&self, tat: Option<Nanos>, now: Nanos) -> (u64, Nanos) {
        let backlog = tat.unwrap_or(now).saturating_sub(now);
        // More than the tolerance only if the clock stepped back since the TAT was set.
        (
            self.tolerance().saturating_sub(backlog) / self.interval,
            backlog,
        )
    }
}
