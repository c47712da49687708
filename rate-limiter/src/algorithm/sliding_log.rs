//! Sliding window log: at most `limit` units in any window of length `window`.
//!
//! Each key keeps the time of every unit spent in the last window, and a request is admitted if
//! the units still inside the window plus its own fit the limit. Exact, with no boundary burst,
//! and the most expensive: memory grows with the limit (a Redis sorted set of up to `limit`
//! members per key; here one entry per distinct instant).
//!
//! A unit spent at `t` counts until `t + window` and not at that instant, which is exactly when
//! the retry time says its capacity returns.
//!
//! A rejected request is not logged: it spends nothing.

use std::{collections::VecDeque, time::Duration};

use super::{
    InvalidAlgorithm, Nanos,
    fixed_window::{bounded_window, positive_limit},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingLog {
    pub limit: u64,
    pub window: Nanos,
}

/// Units spent, oldest first, grouped by the instant they were spent at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log {
    entries: VecDeque<(Nanos, u64)>,
    /// The sum of the entries' units, so that counting the live ones only walks the expired
    /// prefix (usually empty: [`SlidingLog::spend`] drops it) rather than the whole log.
    total: u64,
}

impl Log {
    /// `(time, units)` pairs, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (Nanos, u64)> + '_ {
        self.entries.iter().copied()
    }
}

impl SlidingLog {
    /// The largest limit a sliding log may have. On Redis the log is a sorted set with one
    /// member per unit, written inside the script, so a key's memory and a request's time in
    /// Redis grow with the limit (DESIGN.md §2 has the bytes per member, measured): a limit in
    /// the millions would have one request hold Redis while it writes them all, and leave a key
    /// of hundreds of megabytes. Larger limits belong to the sliding counter, which is two
    /// integers whatever the limit.
    pub const MAX_LIMIT: u64 = 10_000;

    pub fn new(limit: u64, window: Duration) -> Result<Self, InvalidAlgorithm> {
        if limit > Self::MAX_LIMIT {
            return Err(InvalidAlgorithm(
                "a sliding log's limit must be at most 10000 (one entry per unit); use a sliding counter for more",
            ));
        }
        Ok(Self {
            limit: positive_limit(limit)?,
            window: bounded_window(window)?,
        })
    }

    /// The entries still inside the window at `now`: those spent after `now - window`.
    fn live<'a>(
        &self,
        log: Option<&'a Log>,
        now: Nanos,
    ) -> impl Iterator<Item = (Nanos, u64)> + 'a {
        let window = self.window;
        log.into_iter()
            .flat_map(|log| log.entries())
            .skip_while(move |(at, _)| at + window <= now)
    }

    /// Units still inside the window at `now`.
    fn live_units(&self, log: Option<&Log>, now: Nanos) -> u64 {
        let Some(log) = log else { return 0 };
        let expired: u64 = log
            .entries()
            .take_while(|(at, _)| at + self.window <= now)
            .map(|(_, n)| n)
            .sum();
        log.total - expired
    }

    pub fn check(&self, log: Option<&Log>, now: Nanos, units: u64) -> Nanos {
        let live = self.live_units(log, now);
        let Some(excess) = (live + units).checked_sub(self.limit).filter(|e| *e > 0) else {
            return 0;
        };
        // Capacity returns when the oldest `excess` units have left the window.
        let mut leaving = 0;
        for (at, n) in self.live(log, now) {
            leaving += n;
            if leaving >= excess {
                return at + self.window - now;
            }
        }
        unreachable!("excess <= live, since units <= limit")
    }

    pub fn spend(&self, log: &mut Log, now: Nanos, units: u64) {
        while log
            .entries
            .front()
            .is_some_and(|(at, _)| at + self.window <= now)
        {
            let (_, expired) = log.entries.pop_front().expect("checked by the loop");
            log.total -= expired;
        }
        log.total += units;
        match log.entries.back_mut() {
            // `>=`: if the clock stepped back, the units are logged at the newest time already
            // logged, which keeps the log in order and counts them a little longer, never less.
            Some((at, n)) if *at >= now => *n += units,
            _ => log.entries.push_back((now, units)),
        }
    }

    pub fn status(&self, log: Option<&Log>, now: Nanos) -> (u64, Nanos) {
        let live = self.live_units(log, now);
        let reset_after = match log.and_then(|log| log.entries.back()) {
            Some((newest, _)) if live > 0 => newest + self.window - now,
            _ => 0,
        };
        (self.limit.saturating_sub(live), reset_after)
    }
}
