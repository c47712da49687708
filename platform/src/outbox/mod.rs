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
//! 3. Mark them published; or, if the broker refused them, release them.
//!
//! Two relays (two instances of a service) never hold the same row: a claim is a conditional
//! `UPDATE` (with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so they take different rows instead of
//! waiting on each other), and no transaction stays open across the broker call. A relay that
//! dies between 2 and 3 leaves rows that are claimed again when their lease ends and published a
//! second time: that is the "at least" in at-least-once, and why consumers deduplicate by the
//! [`EVENT_ID_HEADER`]. The lease is longer than the producer's delivery timeout, so a relay that
//! is merely slow has given up on its batch before anyone else may take it.
//!
//! A batch the broker refused is released at once rather than left to its lease: a producer
//! answers an error only once nothing of the batch is still on its way (`Producer::publish_all`),
//! so the next pass, of this relay or another, may take it without racing the first try. Left to
//! the lease, every row a failing pass had claimed would wait out its 30 s after the broker came
//! back, and with passes claiming a batch each while the broker was down, so would most of the
//! backlog. Part of a refused batch may have been written (a broker that took some messages and
//! then went away): those go out again, as after a lost acknowledgement, and consumers
//! deduplicate them.
//!
//! # Failing, and the backlog
//! A pass that fails (the broker or the database is down) is not repeated at once, nor for every
//! commit that wakes the relay: the relay waits 100 ms, doubling to 5 s, and starts again from
//! 100 ms after a pass that works. After each pass, at most once a second, it measures what waits
//! ([`Relay::backlog`]): the gauges `outbox_pending{system}`, the rows not yet published, and
//! `outbox_oldest_seconds{system}`, how long the oldest of them has waited. They are what a
//! broker outage looks like from the outside: both climb while it lasts and fall back to zero as
//! the relay drains the table once it is over.
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
use tokio::{sync::Notify, time::Instant};
use uuid::Uuid;

pub use self::{
    postgres::insert_postgres,
    sqlite::{insert_all_sqlite, insert_sqlite},
};
use crate::{
    clock::Clock,
    db::Database,
    fault::{FaultSwitch, Unreachable},
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
/// The wait after a failed pass, doubled after each failure in a row up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a running relay measures its backlog, at most: a count of the unpublished rows is a
/// scan of the partial index, cheap once but not after every batch of a long drain.
const BACKLOG_INTERVAL: Duration = Duration::from_secs(1);
/// The unpublished rows and the `created_at` of the first (the oldest by id, which the partial
/// index `outbox_unpublished` finds without reading the others; `min(created_at)` would read
/// every unpublished row).
const BACKLOG: &str = "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL), \
     (SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1)";
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
    /// The database's fault switch is on (see [`Relay::with_database_switch`]).
    #[error("reading or updating the outbox")]
    Fault(#[from] Unreachable),
    #[error("publishing the outbox")]
    Publish(#[from] TopicError),
}

/// What waits in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Rows not yet published.
    pub pending: u64,
    /// How long the oldest of them has waited; zero when there is none.
    pub oldest: Duration,
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

    /// Ends the lease of the events the batch `claim` still holds, unpublished, so that any
    /// relay may claim them at once; returns how many.
    async fn release(&self, claim: Uuid) -> Result<u64, sqlx::Error>;

    /// How many events are unpublished, and when the first of them (by id) was created.
    async fn backlog(&self) -> Result<(u64, Option<OffsetDateTime>), sqlx::Error>;

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
    /// The `system` label of its metrics.
    system: &'static str,
    table: Arc<dyn Table>,
    /// The system's `database` switch, passed before every statement, if it has one.
    database: Option<FaultSwitch>,
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
            database: None,
            producer,
            clock,
            wake,
        }
    }

    /// Passes `switch` (the system's `database` fault switch, [`crate::fault`]) before every
    /// statement on the outbox, so that a database switched off stops the relay as it stops the
    /// system's own store. The broker's switch is the producer's (`topic::FaultyTopics`).
    pub fn with_database_switch(mut self, switch: FaultSwitch) -> Self {
        self.database = Some(switch);
        self
    }

    async fn pass(&self) -> Result<(), RelayError> {
        if let Some(switch) = &self.database {
            switch.pass().await?;
        }
        Ok(())
    }

    /// Claims, publishes and marks one batch; returns how many events it published. A batch the
    /// broker refused is released, for the next pass to take again (module docs).
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        let claim = Uuid::new_v4();
        let now = self.clock.now();
        self.pass().await?;
        let events = self.table.claim(claim, BATCH, now, now + LEASE).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let count = events.len();
        let messages = events.into_iter().map(OutboxEvent::into_message).collect();
        if let Err(refused) = self.producer.publish_all(messages).await {
            if let Err(err) = self.release(claim).await {
                tracing::warn!(
                    system = self.system,
                    error = %crate::problem::error_chain(&err),
                    "releasing a refused batch failed; its rows wait for their lease to end"
                );
            }
            return Err(refused.into());
        }
        self.pass().await?;
        self.table.mark_published(claim, self.clock.now()).await?;
        metrics::counter!("outbox_published_total", "system" => self.system)
            .increment(count as u64);
        Ok(count)
    }

    async fn release(&self, claim: Uuid) -> Result<u64, RelayError> {
        self.pass().await?;
        Ok(self.table.release(claim).await?)
    }

    /// What waits in the outbox now; sets the gauges `outbox_pending{system}` and
    /// `outbox_oldest_seconds{system}` to it. A running relay calls it after its passes, at most
    /// once a second.
    pub async fn backlog(&self) -> Result<Backlog, RelayError> {
        self.pass().await?;
        let (pending, oldest) = self.table.backlog().await?;
        let oldest = oldest
            .map(|created_at| (self.clock.now() - created_at).unsigned_abs())
            .unwrap_or_default();
        let backlog = Backlog { pending, oldest };
        metrics::gauge!("outbox_pending", "system" => self.system).set(pending as f64);
        metrics::gauge!("outbox_oldest_seconds", "system" => self.system).set(oldest.as_secs_f64());
        Ok(backlog)
    }

    /// Deletes every row published more than [`RETENTION`] ago, [`PRUNE_BATCH`] at a time;
    /// returns how many.
    pub async fn prune_once(&self) -> Result<u64, RelayError> {
        let before = self.clock.now() - RETENTION;
        self.pass().await?;
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
        let mut backoff = FIRST_BACKOFF;
        let mut measured: Option<Instant> = None;
        loop {
            let passed = self.relay_once().await;
            if measured.is_none_or(|at| at.elapsed() >= BACKLOG_INTERVAL) {
                measured = Some(Instant::now());
                if let Err(err) = self.backlog().await {
                    // The pass has warned already, for the same cause.
                    tracing::debug!(system = self.system, error = %crate::problem::error_chain(&err), "measuring the outbox backlog failed");
                }
            }
            match passed {
                // A full batch: there may be more waiting.
                Ok(count) if count == BATCH as usize => continue,
                Ok(_) => backoff = FIRST_BACKOFF,
                Err(err) => {
                    tracing::warn!(
                        system = self.system,
                        error = %crate::problem::error_chain(&err),
                        retry_in = ?backoff,
                        "outbox relay failed"
                    );
                    // Not woken meanwhile: a broker that is down is not helped by a pass for
                    // every commit. A wake that comes is kept (`notify_one`), for after the wait.
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Up to `limit` events not yet published, oldest first: what tests assert on.
    pub async fn unpublished(&self, limit: u32) -> Result<Vec<OutboxEvent>, RelayError> {
        self.pass().await?;
        Ok(self.table.unpublished(limit).await?)
    }
}
