//! Where links and ID blocks are kept: one trait, one module per engine. API keys are kept in this
//! crate's `api_keys` table by `platform::auth::ApiKeys`, the one key store every system shares
//! ([`api_keys`]).
//!
//! The service only ever holds an `Arc<dyn LinkStore>`; [`for_database`] is the one place that
//! picks the implementation, and `app.rs` puts it behind the `database` fault switch
//! ([`FaultyStore`], with the API keys in [`FaultyKeys`]). The two modules run the same operations in each engine's dialect and
//! are held to the same behaviour by the integration tests, which run against whichever engine
//! `DATABASE_URL` selects.

mod faulty;
mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use platform::{auth::ApiKeys, db::Database};
use time::OffsetDateTime;

pub use self::{
    faulty::{FaultyKeys, FaultyStore},
    postgres::PostgresStore,
    sqlite::SqliteStore,
};
use crate::domain::{Link, NewLink, ShortCode};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The code is held by a live or deleted link.
    #[error("the code is taken")]
    CodeTaken,
    /// The `database` fault switch is on (see [`FaultyStore`]).
    #[error(transparent)]
    Fault(#[from] platform::fault::Unreachable),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the database could not be reached, so that no statement was sent: a 503 that a
    /// retry may cure and that changed nothing, where any other failure is a 500. A database
    /// behind its switch and a real one that is down (no connection within the pool's acquire
    /// timeout, or the pool closed) answer alike. A connection cut mid-statement is not one of
    /// these: the statement may have committed, so that stays a 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Fault(_) => true,
            Self::Database(err) => {
                matches!(err, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
            }
            Self::CodeTaken => false,
        }
    }
}

/// Visits to add to one link's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VisitDelta {
    /// Added to `visits`. Redirects of links with `max_visits` were already counted by
    /// [`LinkStore::consume_visit`] and are not counted again here.
    pub visits: u64,
    /// Added to `bot_visits`.
    pub bot_visits: u64,
}

#[async_trait]
pub trait LinkStore: Send + Sync + 'static {
    /// Reserves `count` consecutive IDs for this instance alone and returns the first. Atomic:
    /// two instances leasing at once get disjoint blocks.
    async fn lease_ids(&self, count: u64) -> Result<u64, StoreError>;

    /// Stores a new link; [`StoreError::CodeTaken`] if any link, deleted ones included, has
    /// the code.
    async fn insert_link(&self, link: &NewLink) -> Result<(), StoreError>;

    /// The live (not deleted) link with this code, expired and exhausted ones included.
    async fn find_link(&self, code: &ShortCode) -> Result<Option<Link>, StoreError>;

    /// Deletes a live link, leaving a tombstone; `false` if there was none.
    async fn delete_link(&self, code: &ShortCode, at: OffsetDateTime) -> Result<bool, StoreError>;

    /// Counts one visit to a link with `max_visits` if, and only if, it is live, unexpired at
    /// `now` and below its limit, in one atomic statement: concurrent redirects (from any number
    /// of instances) can never together admit more than `max_visits`. `false` when refused.
    async fn consume_visit(
        &self,
        code: &ShortCode,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Adds a batch of counted visits, all in one transaction.
    async fn add_visits(&self, batch: &[(ShortCode, VisitDelta)]) -> Result<(), StoreError>;
}

/// The one place that chooses the store.
pub fn for_database(database: &Database) -> Arc<dyn LinkStore> {
    match database {
        Database::Postgres(pool) => Arc::new(PostgresStore::new(pool.clone())),
        Database::Sqlite(pool) => Arc::new(SqliteStore::new(pool.clone())),
    }
}

/// The API keys, in the `api_keys` table: a link's `owner_key_id` is a key's id.
pub fn api_keys(database: &Database) -> ApiKeys {
    ApiKeys::new(database.clone(), "api_keys")
}

/// The migrations for both engines, applied at start-up.
pub const MIGRATIONS: platform::db::Migrations = platform::db::Migrations {
    postgres: &sqlx::migrate!("./migrations/postgres"),
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
};

fn map_insert_error(err: sqlx::Error) -> StoreError {
    if platform::db::is_unique_violation(&err) {
        StoreError::CodeTaken
    } else {
        StoreError::Database(err)
    }
}

/// Counters are BIGINT in the database and never negative; a corrupt negative reads as zero.
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn limit(value: Option<i64>) -> Option<u32> {
    value.map(|v| u32::try_from(v).unwrap_or(u32::MAX))
}
