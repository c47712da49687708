//! Where users, notifications, their deliveries and dead letters are kept: one trait, one module
//! per engine, and [`for_database`], the one place that picks between them.
//!
//! Every change the pipeline makes to a delivery is conditional on where the delivery stands
//! (`UPDATE … WHERE status = 'pending'`, `… WHERE status NOT IN (final)`), so a duplicate job,
//! which at-least-once topics do produce, finds nothing to change and records nothing twice.
//! Messages that must go out with a change (an accepted notification to the intake topic, a
//! redrive to its channel's topic, a dead letter to the dead-letter topic) are written to the
//! outbox in the change's own transaction (`platform::outbox`).
//!
//! The `database` fault switch is passed before every call ([`FaultyStore`]), and by intake's
//! groups once per group (`intake.rs`), so that it acts where a slow or lost database would.

mod faulty;
mod intake;
mod postgres;
mod sqlite;

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use platform::{auth::ApiKeys, db::Database, fault::FaultSwitch, outbox::OutboxEvent};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub use self::{faulty::FaultyStore, postgres::PostgresStore, sqlite::SqliteStore};
use crate::domain::{
    Channel, DeliveryStatus, Notification, Priority, Route, User, UserId, template,
};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("a stored row is corrupt: {0}")]
    Corrupt(String),
    /// Shared, so that every request of a group that failed together gets it (`intake.rs`).
    #[error("database error")]
    Database(#[source] Arc<sqlx::Error>),
    /// The task serving intake's groups is gone (it panicked, or the runtime is stopping).
    #[error(transparent)]
    Stopped(#[from] platform::group::Stopped),
    /// The database's fault switch is on ([`FaultyStore`]).
    #[error(transparent)]
    Fault(#[from] platform::fault::Unreachable),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(Arc::new(err))
    }
}

impl StoreError {
    /// Whether one request's own data could be the cause (a row the database refused, a value
    /// that does not decode, a corrupt row), rather than the database itself (unreachable, out
    /// of connections, stopped), which would fail every request alike.
    pub fn may_be_one_requests(&self) -> bool {
        match self {
            Self::Corrupt(_) => true,
            Self::Database(err) => matches!(
                **err,
                sqlx::Error::Database(_)
                    | sqlx::Error::ColumnDecode { .. }
                    | sqlx::Error::Decode(_)
                    | sqlx::Error::Encode(_)
            ),
            Self::Stopped(_) | Self::Fault(_) => false,
        }
    }

    /// Whether the call failed before any statement could be sent: the fault switch is on, or
    /// no connection came within the pool's acquire timeout, or the pool is closed. The answer is
    /// a 503 then, and a retry is safe. A connection cut mid-statement stays a 500: that
    /// statement may have committed.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Fault(_) => true,
            Self::Database(err) => {
                matches!(**err, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
            }
            Self::Corrupt(_) | Self::Stopped(_) => false,
        }
    }
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

/// What a router or a worker needs: the notification as stored, where each of its channels'
/// deliveries stands, and its user as they are now (`None` if the user was removed).
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    pub notification: Notification,
    pub statuses: Vec<(Channel, DeliveryStatus)>,
    pub user: Option<User>,
}

impl Work {
    pub fn status(&self, channel: Channel) -> Option<DeliveryStatus> {
        self.statuses
            .iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, status)| *status)
    }
}

/// The router's decision about one `pending` delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub notification_id: Uuid,
    pub channel: Channel,
    pub route: Route,
}

/// A worker's claim: the job `job` means to make attempt number `attempt` of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub notification_id: Uuid,
    pub channel: Channel,
    pub attempt: u32,
    pub job: Uuid,
}

/// The answer to a [`Claim`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claimed {
    /// The attempt is this job's to make: the notification and its user, to make it with.
    Won(Box<Work>),
    /// It is not (the delivery is final, or another job has the attempt): the delivery's status,
    /// `None` if there is no such delivery.
    Lost(Option<DeliveryStatus>),
}

/// How one delivery's attempt ended, as a worker records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempted {
    pub notification_id: Uuid,
    pub channel: Channel,
    pub outcome: Outcome,
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

    /// The notifications `ids` that exist (in no particular order), each with its deliveries'
    /// statuses and its user, in one query: what the router needs for a batch of intake records.
    async fn work(&self, ids: &[Uuid]) -> Result<Vec<Work>, StoreError>;

    /// For each user and channel of `users` × `channels`, how many of the user's normal (not
    /// critical) deliveries on the channel were queued since `since`, leaving out the
    /// notifications `except` (the ones being routed, which a redelivered intake message may have
    /// queued already). Pairs with none are left out.
    async fn queued_since(
        &self,
        users: &[String],
        channels: &[Channel],
        since: OffsetDateTime,
        except: &[Uuid],
    ) -> Result<HashMap<(String, Channel), u32>, StoreError>;

    /// Applies the router's decisions to `pending` deliveries, all at once; a skip or a throttle
    /// is recorded as the delivery's one attempt. Answers, for each decision, whether it applied:
    /// false (and nothing changed) if the delivery was not pending. A delivery appears at most
    /// once in `decisions`.
    async fn route(
        &self,
        decisions: &[Decision],
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError>;

    /// Claims each attempt for its job, all at once. A claim is won if the delivery is `queued`
    /// or `retrying` and has made exactly `attempt` attempts (or this same job claimed it and is
    /// running again, after an error before its outcome was recorded), and a won claim comes
    /// with the notification and its user, read in the same query. A duplicate job, or one left
    /// from before a redrive, loses, and must not call the provider. A delivery appears at most
    /// once in `claims`.
    async fn claim(
        &self,
        claims: &[Claim],
        now: OffsetDateTime,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Records each attempt and moves its delivery on, unless the delivery is already final (then
    /// nothing: the attempt was a duplicate's), all at once, in one transaction. Ends the
    /// attempts' claims. A delivery appears at most once in `attempts`.
    async fn record(&self, attempts: &[Attempted], now: OffsetDateTime) -> Result<(), StoreError>;

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

/// The one place that chooses the store, behind the `database` fault switch `switch`.
pub fn for_database(database: &Database, switch: FaultSwitch) -> Arc<dyn NotificationStore> {
    let engine: Arc<dyn NotificationStore> = match database {
        Database::Postgres(pool) => Arc::new(PostgresStore::new(pool.clone(), switch.clone())),
        Database::Sqlite(pool) => Arc::new(SqliteStore::new(pool.clone(), switch.clone())),
    };
    Arc::new(FaultyStore::new(engine, switch))
}

/// The API's callers: their keys, kept by `platform::auth::ApiKeys` in the `callers` table.
pub fn callers(database: &Database) -> ApiKeys {
    ApiKeys::new(database.clone(), "callers")
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

/// A notification with its deliveries' statuses and its user's columns, as one query returns them
/// on either engine (after that engine's own conversions): what a [`Work`] is built from.
struct WorkColumns {
    id: Uuid,
    user_id: String,
    template: String,
    data: String,
    priority: String,
    idempotency_key: Option<String>,
    created_at: OffsetDateTime,
    /// `channel=status` pairs, comma-separated (neither contains either character).
    statuses: Option<String>,
    /// `None` if the user does not exist (any more).
    user: Option<UserColumns>,
}

impl WorkColumns {
    fn into_work(self) -> Result<Work, StoreError> {
        let mut statuses = self
            .statuses
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, text) = pair
                    .split_once('=')
                    .ok_or_else(|| corrupt(format!("delivery status {pair:?}")))?;
                Ok((channel(name)?, status(text)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        statuses.sort_by_key(|(channel, _)| *channel);
        let user = match (self.user, UserId::parse(&self.user_id)) {
            (Some(columns), Some(id)) => Some(columns.into_user(id)?),
            _ => None,
        };
        let notification = stored_notification(
            self.id,
            self.user_id,
            &self.template,
            &self.data,
            &self.priority,
            self.idempotency_key,
            self.created_at,
            &statuses,
        )?;
        Ok(Work {
            notification,
            statuses,
            user,
        })
    }
}

/// The user's columns of a work row, as both engines answer them: all nullable, since a
/// notification whose user is gone joins none.
#[derive(sqlx::FromRow)]
struct JoinedUser {
    known_user: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    push_tokens: Option<String>,
    webhook_url: Option<String>,
    opted_out: Option<String>,
}

impl JoinedUser {
    /// The user's columns, `None` if the join found no user.
    fn columns(self) -> Option<UserColumns> {
        match (self.known_user, self.push_tokens, self.opted_out) {
            (Some(_), Some(push_tokens), Some(opted_out)) => Some(UserColumns {
                email: self.email,
                phone: self.phone,
                push_tokens,
                webhook_url: self.webhook_url,
                opted_out,
            }),
            _ => None,
        }
    }
}

/// A user's row, as both engines answer it.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    #[sqlx(flatten)]
    columns: UserColumns,
}

impl UserRow {
    fn into_user(self) -> Result<User, StoreError> {
        let id =
            UserId::parse(&self.id).ok_or_else(|| corrupt(format!("user id {:?}", self.id)))?;
        self.columns.into_user(id)
    }
}

/// A user's stored columns, with the JSON ones as text.
#[derive(sqlx::FromRow)]
struct UserColumns {
    email: Option<String>,
    phone: Option<String>,
    push_tokens: String,
    webhook_url: Option<String>,
    opted_out: String,
}

impl UserColumns {
    fn into_user(self, id: UserId) -> Result<User, StoreError> {
        Ok(User {
            id,
            email: self.email,
            phone: self.phone,
            push_tokens: tokens_from(&self.push_tokens)?,
            webhook_url: self.webhook_url,
            opted_out: channels_from(&self.opted_out)?,
        })
    }
}

/// What a router's decision stores: the delivery's new status and, for a skip or a throttle, the
/// attempt that explains it.
fn routed_attempt(route: &Route) -> (&'static str, Option<&str>) {
    match route {
        Route::Queue => ("queued", None),
        Route::Skip(reason) => ("skipped", Some(reason)),
        Route::Throttle(reason) => ("throttled", Some(reason)),
    }
}

/// What an attempt's outcome stores: the delivery's new status, the attempt's outcome and error.
fn recorded_attempt(outcome: &Outcome) -> (&'static str, &'static str, Option<&str>) {
    match outcome {
        Outcome::Delivered => ("delivered", "delivered", None),
        Outcome::Retry { error } => ("retrying", "retry", Some(error.as_str())),
        Outcome::Dead { letter, .. } => ("dead", "failed", Some(letter.error.as_str())),
    }
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
