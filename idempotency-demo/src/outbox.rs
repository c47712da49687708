//! The outbox relay: publishes the events that finished payments wrote to `outbox`, to the topic
//! `payments.events`, keyed by payment id, with the event id in an `event_id` header.
//!
//! Why an outbox: publishing from the request, after the payment's transaction commits, loses
//! the event if the process dies between the two; publishing before it commits announces payments
//! that may roll back. Writing the event in the payment's own transaction (phase 4) makes "the
//! payment finished" and "there is an event to announce" one fact. The relay then turns that into
//! at-least-once delivery:
//!
//! 1. Claim a batch: lease up to [`BATCH`] unpublished rows to this batch's token
//!    ([`PaymentStore::claim_events`]). Rows are chosen by "not yet published", not by "id above
//!    the last one published": ids are assigned at insert, so a transaction that commits late
//!    can add a row *below* ids already published, which a high-water mark would skip for ever.
//! 2. Publish them and wait for the broker's acknowledgement.
//! 3. Mark them published ([`PaymentStore::mark_published`]).
//!
//! Two relays (two instances of the service) never hold the same row: a claim is a conditional
//! `UPDATE` (with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so they take different rows instead of
//! waiting on each other), and no transaction stays open across the broker call. A relay that
//! dies between 2 and 3 leaves rows that are claimed again when their lease ends and published a
//! second time: that is the "at least" in at-least-once, and why consumers deduplicate by the
//! `event_id` header. The lease is longer than the producer's delivery timeout, so a relay that
//! is merely slow has given up on its batch before anyone else may take it.

use std::{sync::Arc, time::Duration};

use platform::{
    clock::Clock,
    shutdown::CancellationToken,
    topic::{Message, Producer, TopicError},
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::store::{PaymentStore, StoreError};

/// Rows per claim.
pub const BATCH: u32 = 100;
/// How long a claim holds: longer than a publish can take (the Kafka producer gives up after
/// 10 s).
pub const LEASE: Duration = Duration::from_secs(30);
/// The header consumers deduplicate on.
pub const EVENT_ID_HEADER: &str = "event_id";
/// The header naming the event's type, so consumers can route without parsing the payload.
pub const EVENT_TYPE_HEADER: &str = "event_type";

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("publishing the outbox")]
    Publish(#[from] TopicError),
}

#[derive(Clone)]
pub struct Relay {
    store: Arc<dyn PaymentStore>,
    producer: Arc<dyn Producer>,
    clock: Arc<dyn Clock>,
    /// Woken when a payment finishes, so an event goes out at once rather than at the next poll.
    wake: Arc<Notify>,
}

impl Relay {
    pub fn new(
        store: Arc<dyn PaymentStore>,
        producer: Arc<dyn Producer>,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            producer,
            clock,
            wake,
        }
    }

    /// Claims, publishes and marks one batch; returns how many events it published.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        let claim = Uuid::new_v4();
        let now = self.clock.now();
        let events = self
            .store
            .claim_events(claim, BATCH, now, now + LEASE)
            .await?;
        if events.is_empty() {
            return Ok(0);
        }
        let count = events.len();
        let messages = events
            .into_iter()
            .map(|event| {
                Message::new(event.topic, event.message_key, event.payload)
                    .with_header(EVENT_ID_HEADER, event.event_id.to_string())
                    .with_header(EVENT_TYPE_HEADER, event.event_type)
            })
            .collect();
        self.producer.publish_all(messages).await?;
        self.store.mark_published(claim, self.clock.now()).await?;
        metrics::counter!("payments_outbox_published_total").increment(count as u64);
        Ok(count)
    }

    /// Relays until `stop`: at once when woken, and every `interval` regardless (events of other
    /// instances, and batches whose lease ran out).
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        loop {
            match self.relay_once().await {
                // A full batch: there may be more waiting.
                Ok(count) if count == BATCH as usize => continue,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %platform::problem::error_chain(&err), "outbox relay failed; retrying");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}
