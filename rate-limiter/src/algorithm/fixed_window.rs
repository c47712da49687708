//! Fixed window: at most `limit` units per window, windows aligned to the Unix epoch.
//!
//! One counter per key, reset when a new window starts. Cheap and easy to explain, and wrong at
//! the edges: a client can spend `limit` at the end of one window and `limit` again at the start
//! of the next, twice the limit within a few milliseconds (shown by a test in `tests.rs`). Every
//! key's window also ends at the same instant, so clients that wait for the reset all come back
//! together.
//!
//! A rejected request spends nothing: the counter only grows by admitted units.

use std::time::Duration;

use super::{InvalidAlgorithm, MAX_WINDOW, Nanos, positive_nanos};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedWindow {
    pub limit: u64,
    /// The window's length in nanoseconds.
    pub window: Nanos,
}

impl FixedWindow {
    pub fn new(limit: u64, window: Duration) -> Result<Self, InvalidAlgorithm> {
        Ok(Self {
            limit: positive_limit(limit)?,
            window: bounded_window(window)?,
        })
    }

    /// The current window and the units already spent in it. A state from a later window than
    /// `now`'s (the clock stepped back) still counts: a step back must not open a fresh window.
    fn current(&self, state: Option<(u64, u64)>, now: Nanos) -> (u64, u64) {
        let index = now / self.window;
        match state {
            Some((stored, spent)) if stored >= index => (stored, spent),
            _ => (index, 0),
        }
    }

    fn window_end(&self, index: u64) -> Nanos {
        (index + 1) * self.window
    }

    pub fn check(&self, state: Option<(u64, u64)>, now: Nanos, units: u64) -> Nanos {
        let (index, spent) = self.current(state, now);
        if spent + units <= self.limit {
            0
        } else {
            self.window_end(index) - now
        }
    }

    pub fn spend(&self, state: Option<(u64, u64)>, now: Nanos, units: u64) -> (u64, u64) {
        let (index, spent) = self.current(state, now);
        (index, spent + units)
    }

    pub fn status(&self, state: Option<(u64, u64)>, now: Nanos) -> (u64, Nanos) {
        match self.current(state, now) {
            (_, 0) => (self.limit, 0),
            (index, spent) => (self.limit - spent, self.window_end(index) - now),
        }
    }
}

pub(super) fn positive_limit(limit: u64) -> Result<u64, InvalidAlgorithm> {
    if limit == 0 {
        return Err(InvalidAlgorithm("the limit must be at least 1"));
    }
    Ok(limit)
}

pub(super) fn bounded_window(window: Duration) -> Result<Nanos, InvalidAlgorithm> {
    let nanos = positive_nanos(window, "the window must be longer than zero")?;
    if nanos > MAX_WINDOW {
        return Err(InvalidAlgorithm("the window must be at most one year"));
    }
    // Redis's clock counts microseconds: a finer window would be rounded there, and the two
    // stores would disagree about where windows begin.
    if nanos % 1000 != 0 {
        return Err(InvalidAlgorithm(
            "the window must be a whole number of microseconds",
        ));
    }
    Ok(nanos)
}
