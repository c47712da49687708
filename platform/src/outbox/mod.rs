//! The transactional outbox: a system writes each event it announces into its own `outbox` table,
//! in the transaction that makes the change, and a [`Relay`] publishes those rows to their topics.
//!
//! Why an outbox: publishing from the request, after the change's transaction commits, loses the
//! event if the process dies between the two; publishing before it commits announces a change
//! that may roll back. Writing the event in the change's own transaction makes "it happened" and
//! "there is an event to announce" one fact. The relay then turns that into at-least-once
//! delivery:
//!
//! 1. Claim a batch: lease up to [`BATCH`] unpublished rows to this batch's token. Rows are chosen
//!    by "not yet published" (`published_at IS NULL`), not by "id above the last one published":
//!    ids are assigned at insert, so a transaction that commits late can add a row *below* ids
//!    already published, which a high-water mark would skip for ever.
//! 2. Publish them and wait for the broker's acknowledgement.
//! 3. Mark them published.
//!
//! Two relays (two instances of a service) never hold the same row: a claim is a conditional
//! `UPDATE` (with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so they take different rows instead of
//! waiting on each other), and no transaction stays open across the broker call. A relay that
//! dies between 2 and 3 leaves rows that are claimed again when their lease ends and published a
//! second time: that is the "at least" in at-least-once, and why consumers deduplicate by the
//! [`EVENT_ID_HEADER`]. The lease is longer than the producer's delivery timeout, so a relay that
//! is merely slow has given up on its batch before anyone else may take it.
//!
//! A published row stays in the table for [`RETENTION`], so what went out recently can be looked
//! up (and published again by hand), and is then deleted by the running relay, a bounded batch at
//! a time ([`Relay::prune_once`]): at the notifier's few thousand events a second, a table that
//! kept every row would grow by hundreds of millions of rows a day. Only published rows are
//! deleted; an unpublished one stays however old it is.
//!
//! # Writing events
//! [`insert_postgres`] and [`insert_sqlite`] write one row on the caller's connection, so inside
//! the caller's transaction (pass `&mut tx`); [`insert_all_sqlite`] writes many in one
//! statement. A system whose PostgreSQL write is already one data-modifying CTE (the idempotency
//! demo's last phase) inserts into `outbox` within that statement instead: a separate insert
//! would be a second round trip on its hot path.
//!
//! # The table
//! Every system that publishes has an `outbox` table of one shape, in its own schema (or its own
//! SQLite file): [`POSTGRES_TABLE`] and [`SQLITE_TABLE`] are its DDL, and a system copies the one
//! it needs into a migration of its own. The alternative, platform creating the table with
//! migrations of its own, was rejected: a system's migrations are one history in its
//! `_sqlx_migrations`, where sqlx refuses to run while rows it does not know are recorded (a second
//! migrator in the schema would put them there), and a table defined once in platform would
//! change under every system at its next start, without a migration the system can see. The
//! relay's tests run on these two constants, and each system's own tests run the relay on its copy.
//!
//! # Layout
//! - `postgres.rs`, `postgres.sql`: the statements and the table on PostgreSQL.
//! - `sqlite.rs`, `sqlite.sql`: the same on SQLite.
//! - `tests.rs`: the relay against the configured database and topics.

mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

pub use self::{
    postgres::insert_postgres,
    sqlite::{insert_all_sqlite, insert_sqlite},
};
use crate::{
    clock::Clock,
    db::Database,
    shutdown::CancellationToken,
    topic::{Message, Producer, TopicError},
};

/// Rows per claim.
pub const BATCH: u32 = 100;
/// How long a claim holds: longer than a publish can take (the Kafka producer gives up after
/// 10 s).
pub const LEASE: Duration = Duration::from_secs(30);
/// How long a published row stays in the table before the relay deletes it.
pub const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// How often a running relay deletes the rows past [`RETENTION`].
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// Rows per delete: a short statement each, so a first prune of a long backlog does not hold the
/// table (or SQLite's one writer) for long.
const PRUNE_BATCH: u32 = 10_000;
/// The header consumers deduplicate on.
pub const EVENT_ID_HEADER: &str = "event_id";
/// The header naming the event's type, so consumers can route without parsing the payload.
pub const EVENT_TYPE_HEADER: &str = "event_type";

/// The `outbox` table on PostgreSQL, for a system to copy into a migration of its own.
pub const POSTGRES_TABLE: &str = include_str!("postgres.sql");
/// The `outbox` table on SQLite, for a system to copy into a migration of its own.
pub const SQLITE_TABLE: &str = include_str!("sqlite.sql");

/// One event to publish, written by a system in its own transaction beside the change it
/// announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Sent as [`EVENT_ID_HEADER`]; unique in the table, so one event is one row.
    pub event_id: Uuid,
    pub topic: String,
    /// The message key (the `message_key` column): one partition, in order, per key.
    pub key: String,
    /// Sent as [`EVENT_TYPE_HEADER`].
    pub event_type: String,
    pub payload: Vec<u8>,
    pub created_at: OffsetDateTime,
}

impl OutboxEvent {
    fn into_message(self) -> Message {
        Message::new(self.topic, self.key, self.payload)
            .with_header(EVENT_ID_HEADER, self.event_id.to_string())
            .with_header(EVENT_TYPE_HEADER, self.event_type)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("reading or updating the outbox")]
    Database(#[from] sqlx::Error),
    #[error("publishing the outbox")]
    Publish(#[from] TopicError),
}

/// The statements the relay needs, one implementation per engine.
#[async_trait]
trait Table: Send + Sync + 'static {
    /// Leases up to `limit` unpublished events to the batch `claim` until `lease_until`: events
    /// nobody holds, or whose lease ended before `now`. Oldest first.
    async fn claim(
        &self,
        claim: Uuid,
        limit: u32,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Vec<OutboxEvent>, sqlx::Error>;

    /// Marks the events the batch `claim` still holds as published; returns how many.
    async fn mark_published(&self, claim: Uuid, now: OffsetDateTime) -> Result<u64, sqlx::Error>;

    /// Events not yet published, oldest first.
    async fn unpublished(&self, limit: u32) -> Result<Vec<OutboxEvent>, sqlx::Error>;

    /// Deletes up to `limit` of the oldest rows published before `before`; returns how many.
    ///
    /// Only the rows below the first that is still wanted (published since `before`, or created
    /// since and not yet published), so that the statement reads the primary key from its start
    /// to there and stops: the table has no index on `published_at`, and without that bound the
    /// last statement of every prune, finding fewer rows than `limit`, would read the whole
    /// table, a day of rows, every minute (a sequential scan, measured in the notifier's
    /// `DESIGN.md` §10). Ids follow publishing closely (a row is
    /// published within a lease of being written), so what the bound leaves behind is deleted at
    /// the next prune. An old row that never got published is passed over, not deleted, and does
    /// not stop the rows after it.
    async fn delete_published(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, sqlx::Error>;
}

/// Publishes a system's `outbox` rows: claims them with a lease, publishes them with the
/// [`EVENT_ID_HEADER`] and [`EVENT_TYPE_HEADER`], and marks them published.
#[derive(Clone)]
pub struct Relay {
    /// The `system` label of `outbox_published_total`.
    system: &'static str,
    table: Arc<dyn Table>,
    producer: Arc<dyn Producer>,
    clock: Arc<dyn Clock>,
    /// Woken when the system commits an event, so it goes out at once rather than at the next
    /// poll.
    wake: Arc<Notify>,
}

impl Relay {
    /// A relay for the `outbox` table of `database`. `system` names it in metrics and logs;
    /// `wake` is notified by the system after each commit that wrote an event.
    pub fn new(
        system: &'static str,
        database: Database,
        producer: Arc<dyn Producer>,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
    ) -> Self {
        let table: Arc<dyn Table> = match database {
            Database::Postgres(pool) => Arc::new(postgres::PostgresOutbox::new(pool)),
            Database::Sqlite(pool) => Arc::new(sqlite::SqliteOutbox::new(pool)),
        };
        Self {
            system,
            table,
            producer,
            clock,
            wake,
        }
    }

    /// Claims, publishes and marks one batch; returns how many events it published.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        let claim = Uuid::new_v4();
        let now = self.clock.now();
        let events = self.table.claim(claim, BATCH, now, now + LEASE).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let count = events.len();
        let messages = events.into_iter().map(OutboxEvent::into_message).collect();
        self.producer.publish_all(messages).await?;
        self.table.mark_published(claim, self.clock.now()).await?;
        metrics::counter!("outbox_published_total", "system" => self.system)
            .increment(count as u64);
        Ok(count)
    }

    /// Deletes every row published more than [`RETENTION`] ago, [`PRUNE_BATCH`] at a time;
    /// returns how many.
    pub async fn prune_once(&self) -> Result<u64, RelayError> {
        let before = self.clock.now() - RETENTION;
        Ok(crate::db::delete_in_batches(PRUNE_BATCH, |limit| {
            self.table.delete_published(before, limit)
        })
        .await?)
    }

    /// Relays until `stop`: at once when woken, and every `interval` regardless (events of other
    /// instances, and batches whose lease ran out); and deletes what is past [`RETENTION`] every
    /// [`PRUNE_INTERVAL`], beside it rather than between its batches, so that a long prune does
    /// not hold up publishing.
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        tokio::join!(self.relay(interval, &stop), self.prune(&stop));
    }

    async fn prune(&self, stop: &CancellationToken) {
        loop {
            match self.prune_once().await {
                Ok(0) => {}
                Ok(deleted) => {
                    tracing::debug!(
                        system = self.system,
                        deleted,
                        "published outbox rows deleted"
                    );
                }
                Err(err) => {
                    tracing::warn!(
                        system = self.system,
                        error = %crate::problem::error_chain(&err),
                        "deleting published outbox rows failed; trying again later"
                    );
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(PRUNE_INTERVAL) => {}
            }
        }
    }

    async fn relay(&self, interval: Duration, stop: &CancellationToken) {
        loop {
            match self.relay_once().await {
                // A full batch: there may be more waiting.
                Ok(count) if count == BATCH as usize => continue,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(
                        system = self.system,
                        error = %crate::problem::error_chain(&err),
                        "outbox relay failed; retrying"
                    );
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Up to `limit` events not yet published, oldest first: what tests assert on, and what a
    /// backlog check would count.
    pub async fn unpublished(&self, limit: u32) -> Result<Vec<OutboxEvent>, RelayError> {
        Ok(self.table.unpublished(limit).await?)
    }
}
