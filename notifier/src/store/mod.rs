//! Where users, notifications, their deliveries and dead letters are kept: one trait, one module
//! per engine, and [`for_database`], the one place that picks between them.
//!
//! Every change the pipeline makes to a delivery is conditional on where the delivery stands
//! (`UPDATE … WHERE status = 'pending'`, `… WHERE status NOT IN (final)`), so a duplicate job,
//! which at-least-once topics do produce, finds nothing to change and records nothing twice.
//! Messages that must go out with a change (an accepted notification to the intake topic, a
//! redrive to its channel's topic, a dead letter to the dead-letter topic) are written to the
//! outbox in the change's own transaction (`platform::outbox`).

mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use platform::{db::Database, outbox::OutboxEvent};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub use self::{postgres::PostgresStore, sqlite::SqliteStore};
use crate::domain::{
    Channel, DeliveryStatus, Notification, Priority, Route, User, UserId, template,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a stored row is corrupt: {0}")]
    Corrupt(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// What [`NotificationStore::insert_notification`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// The idempotency key was used before, by this notification.
    Existing(Uuid),
}

/// A notification as stored, with where each channel's delivery stands.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NotificationRecord {
    pub id: Uuid,
    pub user_id: String,
    pub template: String,
    pub priority: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub deliveries: Vec<DeliveryRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeliveryRecord {
    pub channel: Channel,
    /// `pending`, `queued`, `retrying`, `delivered`, `skipped` (opted out), `throttled` or `dead`
    /// (dead-lettered).
    pub status: String,
    pub attempts: Vec<AttemptRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttemptRecord {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// `delivered`, `retry` (failed, tried again later), `failed` (dead-lettered), `skipped` or
    /// `throttled`.
    pub outcome: String,
    pub error: Option<String>,
}

/// What a router or a worker needs: the notification as stored, and where each of its channels'
/// deliveries stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    pub notification: Notification,
    pub statuses: Vec<(Channel, DeliveryStatus)>,
}

impl Work {
    pub fn status(&self, channel: Channel) -> Option<DeliveryStatus> {
        self.statuses
            .iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, status)| *status)
    }
}

/// How an attempt ended, as a worker records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Failed; the next attempt is already in a retry topic.
    Retry {
        error: String,
    },
    /// Failed for good: the dead letter, and the event that announces it on the dead-letter topic.
    Dead {
        letter: DeadLetter,
        event: OutboxEvent,
    },
}

/// A delivery that failed for good.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeadLetter {
    pub id: Uuid,
    pub notification_id: Uuid,
    pub channel: Channel,
    /// The last attempt's error.
    pub error: String,
    /// Attempts made before giving up.
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it was put back; a dead letter is redriven at most once.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub redriven_at: Option<OffsetDateTime>,
}

#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Creates or replaces a user.
    async fn put_user(&self, user: &User, now: OffsetDateTime) -> Result<(), StoreError>;

    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError>;

    /// Writes the notification, one `pending` delivery per channel and `intake` (its message to
    /// the intake topic) to the outbox, in one transaction; or, if its idempotency key was used
    /// before, nothing.
    async fn insert_notification(
        &self,
        notification: &Notification,
        intake: &OutboxEvent,
    ) -> Result<Inserted, StoreError>;

    async fn notification(&self, id: Uuid) -> Result<Option<NotificationRecord>, StoreError>;

    /// The notification and its deliveries' statuses, for the router and the workers.
    async fn work(&self, id: Uuid) -> Result<Option<Work>, StoreError>;

    /// How many of `user`'s normal (not critical) deliveries on `channel` were queued since
    /// `since`, leaving out
    /// notification `except` (the one being routed, which a redelivered intake message may have
    /// queued already).
    async fn queued_since(
        &self,
        user: &str,
        channel: Channel,
        since: OffsetDateTime,
        except: Uuid,
    ) -> Result<u32, StoreError>;

    /// Applies the router's decision to a `pending` delivery; a skip or a throttle is recorded as
    /// the delivery's one attempt. Returns false (and changes nothing) if it was not pending.
    async fn route(
        &self,
        id: Uuid,
        channel: Channel,
        route: &Route,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Claims attempt number `attempt` of a `queued` or `retrying` delivery for the job `job`:
    /// true if the delivery has made exactly `attempt` attempts (or this same job claimed it and
    /// is running again, after an error before its outcome was recorded). A duplicate job, or
    /// one left from before a redrive, gets false and must not call the provider.
    async fn claim(
        &self,
        id: Uuid,
        channel: Channel,
        attempt: u32,
        job: Uuid,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Records an attempt and moves the delivery on, unless it is already final (then nothing:
    /// the attempt was a duplicate's). Ends the attempt's claim.
    async fn record(
        &self,
        id: Uuid,
        channel: Channel,
        outcome: &Outcome,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// The newest dead letters first.
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError>;

    async fn dead_letter(&self, id: Uuid) -> Result<Option<DeadLetter>, StoreError>;

    /// Marks the dead letter redriven, puts its delivery back to `queued` and writes `job` (its
    /// message to the channel's topic) to the outbox, in one transaction. Returns false, changing
    /// nothing, if it was redriven before.
    async fn redrive(
        &self,
        id: Uuid,
        job: &OutboxEvent,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

/// The one place that chooses the store.
pub fn for_database(database: &Database) -> Arc<dyn NotificationStore> {
    match database {
        Database::Postgres(pool) => Arc::new(PostgresStore::new(pool.clone())),
        Database::Sqlite(pool) => Arc::new(SqliteStore::new(pool.clone())),
    }
}

/// The migrations for both engines, applied at start-up.
pub const MIGRATIONS: platform::db::Migrations = platform::db::Migrations {
    postgres: &sqlx::migrate!("./migrations/postgres"),
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
};

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

fn channels_json(channels: &[Channel]) -> String {
    serde_json::to_string(channels).expect("channels serialise")
}

fn channels_from(json: &str) -> Result<Vec<Channel>, StoreError> {
    serde_json::from_str(json).map_err(|err| corrupt(format!("channels: {err}")))
}

fn tokens_from(json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|err| corrupt(format!("push tokens: {err}")))
}

fn channel(text: &str) -> Result<Channel, StoreError> {
    Channel::parse(text).ok_or_else(|| corrupt(format!("channel {text:?}")))
}

fn status(text: &str) -> Result<DeliveryStatus, StoreError> {
    DeliveryStatus::parse(text).ok_or_else(|| corrupt(format!("delivery status {text:?}")))
}

/// The stored columns of a notification, back into the domain type.
#[allow(clippy::too_many_arguments)]
fn stored_notification(
    id: Uuid,
    user_id: String,
    template_name: &str,
    data: &str,
    priority: &str,
    idempotency_key: Option<String>,
    created_at: OffsetDateTime,
    statuses: &[(Channel, DeliveryStatus)],
) -> Result<Notification, StoreError> {
    let data = match serde_json::from_str(data) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(corrupt(format!("notification data of {id}"))),
    };
    Ok(Notification {
        id,
        user_id,
        template: template::find(template_name)
            .ok_or_else(|| corrupt(format!("template {template_name:?}")))?
            .name,
        data,
        channels: statuses.iter().map(|(channel, _)| *channel).collect(),
        priority: Priority::parse(priority)
            .ok_or_else(|| corrupt(format!("priority {priority:?}")))?,
        idempotency_key,
        created_at,
    })
}

/// The attempt a router's decision records, if any.
fn routed_attempt(route: &Route) -> (&'static str, Option<&str>) {
    match route {
        Route::Queue => ("queued", None),
        Route::Skip(reason) => ("skipped", Some(reason)),
        Route::Throttle(reason) => ("throttled", Some(reason)),
    }
}

/// Groups attempt rows (already ordered) under their deliveries.
fn assemble(
    deliveries: Vec<(String, String)>,
    attempts: Vec<(String, OffsetDateTime, String, Option<String>)>,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let mut records = deliveries
        .into_iter()
        .map(|(name, status)| {
            Ok(DeliveryRecord {
                channel: channel(&name)?,
                status,
                attempts: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    for (name, at, outcome, error) in attempts {
        let channel = channel(&name)?;
        if let Some(record) = records.iter_mut().find(|r| r.channel == channel) {
            record.attempts.push(AttemptRecord { at, outcome, error });
        }
    }
    records.sort_by_key(|record| record.channel);
    Ok(records)
}
