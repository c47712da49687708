//! Wall-clock time behind a trait.
//!
//! Behaviour that depends on the time of day (a link that expires, a key that is kept for 24 hours)
//! takes its `now` from a [`Clock`], so a test moves time forward with [`ManualClock::advance`]
//! instead of sleeping. Durations measured inside the process (cache TTLs, timeouts) use tokio's
//! monotonic clock instead, which tests control with `tokio::time::pause()`.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use time::OffsetDateTime;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    /// Starts at the current time, truncated to whole seconds so that values stay readable.
    pub fn starting_now() -> Self {
        let now = OffsetDateTime::now_utc();
        Self::new(
            now.replace_nanosecond(0)
                .expect("zero is a valid nanosecond"),
        )
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }

    pub fn set(&self, to: OffsetDateTime) {
        *self.0.lock().unwrap() = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = ManualClock::starting_now();
        let copy = clock.clone();
        let start = clock.now();

        copy.advance(Duration::from_secs(90));

        assert_eq!(clock.now() - start, time::Duration::seconds(90));
    }
}
