//! Visit counting off the redirect path.
//!
//! A redirect adds one to an in-memory tally and returns; a background task writes the tallies to
//! the database every second (by default) in one statement. The redirect never waits for the
//! database, and a hot link costs one write per second instead of one per visit.
//!
//! What that costs: the counts in the database trail the truth by up to one interval, and a
//! process that is killed (not stopped: a graceful stop flushes) loses the visits of its last
//! interval. A failed flush puts its tallies back, so a database outage delays counts rather than
//! losing them. Links with `max_visits` are different: their limit must hold exactly, so their
//! visits are counted in the database on the redirect path itself (see
//! `LinkStore::consume_visit`) and only their bot share goes through here.

use std::{collections::HashMap, mem, sync::Arc, sync::Mutex, time::Duration};

use platform::shutdown::CancellationToken;

use crate::{
    domain::ShortCode,
    store::{LinkStore, StoreError, VisitDelta},
};

pub struct VisitRecorder {
    store: Arc<dyn LinkStore>,
    pending: Mutex<HashMap<ShortCode, VisitDelta>>,
}

impl VisitRecorder {
    pub fn new(store: Arc<dyn LinkStore>) -> Self {
        Self {
            store,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Tallies one redirect. `already_counted` is true for links whose visit the database has
    /// counted already (the ones with `max_visits`).
    pub fn record(&self, code: &ShortCode, is_bot: bool, already_counted: bool) {
        let mut pending = self.pending.lock().unwrap();
        let delta = match pending.get_mut(code) {
            Some(delta) => delta,
            None => pending.entry(code.clone()).or_default(),
        };
        delta.visits += u64::from(!already_counted);
        delta.bot_visits += u64::from(is_bot);
    }

    /// Visits tallied here and not yet written, so that a link read on this instance is exact.
    pub fn pending(&self, code: &ShortCode) -> VisitDelta {
        self.pending
            .lock()
            .unwrap()
            .get(code)
            .copied()
            .unwrap_or_default()
    }

    /// Writes every tally to the database. On failure the tallies are merged back for the next
    /// flush, so nothing is lost while the database is away.
    ///
    /// Metrics: `shortener_visit_flushes_total{outcome}`, `shortener_visits_flushed_total` (the
    /// visits a flush wrote: `visits`, of which bots are a part, not counted twice) and
    /// `shortener_visits_pending` (the visits waiting for the next flush once this one is done: it
    /// climbs while the database is away and drops on the flush that reaches it).
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let batch: Vec<(ShortCode, VisitDelta)> = {
            let mut pending = self.pending.lock().unwrap();
            mem::take(&mut *pending).into_iter().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        match self.store.add_visits(&batch).await {
            Ok(()) => {
                let visits: u64 = batch.iter().map(|(_, delta)| delta.visits).sum();
                metrics::counter!("shortener_visit_flushes_total", "outcome" => "ok").increment(1);
                metrics::counter!("shortener_visits_flushed_total").increment(visits);
                let left = waiting(&self.pending.lock().unwrap());
                metrics::gauge!("shortener_visits_pending").set(left as f64);
                Ok(batch.len())
            }
            Err(err) => {
                metrics::counter!("shortener_visit_flushes_total", "outcome" => "error")
                    .increment(1);
                let mut pending = self.pending.lock().unwrap();
                for (code, delta) in batch {
                    let merged = pending.entry(code).or_default();
                    merged.visits += delta.visits;
                    merged.bot_visits += delta.bot_visits;
                }
                metrics::gauge!("shortener_visits_pending").set(waiting(&pending) as f64);
                Err(err)
            }
        }
    }

    /// Flushes every `interval` until `stop` is cancelled, then flushes once more.
    pub async fn run(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(err) = self.flush().await {
                        tracing::warn!(error = %err, "visit flush failed; will retry");
                    }
                }
                () = stop.cancelled() => break,
            }
        }
        match self.flush().await {
            Ok(links) => tracing::info!(links, "flushed visits before stopping"),
            Err(err) => tracing::error!(error = %err, "final visit flush failed; visits lost"),
        }
    }
}

/// The visits tallied and not yet written (bots are a part of `visits`, not added to them).
fn waiting(pending: &HashMap<ShortCode, VisitDelta>) -> u64 {
    pending.values().map(|delta| delta.visits).sum()
}
