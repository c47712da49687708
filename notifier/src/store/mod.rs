//! Where users, notifications and their deliveries are kept: one trait, one module per engine,
//! and [`for_database`], the one place that picks between them.

mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use platform::db::Database;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub use self::{postgres::PostgresStore, sqlite::SqliteStore};
use crate::domain::{Channel, Notification, User, UserId};

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
    /// `pending`, `delivered`, `skipped` (opted out), `failed` or `dead` (dead-lettered).
    pub status: String,
    pub attempts: Vec<AttemptRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttemptRecord {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// `delivered`, `retry` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
}

#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Creates or replaces a user.
    async fn put_user(&self, user: &User, now: OffsetDateTime) -> Result<(), StoreError>;

    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError>;

    /// Writes the notification and one `pending` delivery per channel, in one transaction; or,
    /// if its idempotency key was used before, nothing.
    async fn insert_notification(
        &self,
        notification: &Notification,
    ) -> Result<Inserted, StoreError>;

    async fn notification(&self, id: Uuid) -> Result<Option<NotificationRecord>, StoreError>;
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
