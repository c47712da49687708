//! Where idempotency keys and payments are kept, and where a finished payment's outbox event is
//! written: one trait, one module per engine, the one place that picks between them
//! ([`for_database`]). Reading the outbox back and publishing it is `platform::outbox::Relay`'s;
//! the clients' API keys are kept in the `clients` table by `platform::auth::ApiKeys`, the one key
//! store every system shares ([`clients`]).
//!
//! Each method that moves a key forward is atomic (one statement on PostgreSQL, one transaction on
//! SQLite), and is guarded by the key's lock token: `UPDATE … WHERE id = $1 AND lock_token = $2`. A request that lost its lock (it was
//! slower than the lock timeout and someone took the key over) finds no row to update and stops
//! with [`StoreError::LockLost`] instead of writing over the new owner's work. Together with the
//! unique `(client_id, key)` this is the whole concurrency story: no `SELECT … FOR UPDATE`, no
//! isolation level above read committed, and the same code on SQLite and PostgreSQL.
//!
//! [`FaultyStore`] puts either engine behind the `database` fault switch.

mod faulty;
mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use platform::{auth::ApiKeys, db::Database, outbox::OutboxEvent};
use time::OffsetDateTime;
use uuid::Uuid;

pub use self::{faulty::FaultyStore, postgres::PostgresStore, sqlite::SqliteStore};
use crate::domain::{
    ClientId, Fingerprint, IdempotencyKey, Payment, PaymentId, PaymentRequest, PaymentStatus,
    RecoveryPoint,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key's lock was taken over; this request must stop.
    #[error("the idempotency key's lock was taken over by another request")]
    LockLost,
    #[error("a stored row is corrupt: {0}")]
    Corrupt(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The database's fault switch is on ([`FaultyStore`]).
    #[error(transparent)]
    Fault(#[from] platform::fault::Unreachable),
}

impl StoreError {
    /// Whether the call failed before any statement could be sent: the fault switch is on, or
    /// no connection came within the pool's acquire timeout, or the pool is closed. The answer is
    /// then a 503 (`Retry-After`). A connection cut mid-statement stays a 500, as elsewhere in
    /// the workspace: that statement may have committed. Either way the key's retry is safe.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Fault(_) => true,
            Self::Database(err) => {
                matches!(err, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
            }
            Self::LockLost | Self::Corrupt(_) => false,
        }
    }
}

/// A key's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: i64,
    pub client: ClientId,
    pub key: String,
    pub fingerprint: String,
    pub request: PaymentRequest,
    pub recovery_point: RecoveryPoint,
    pub payment: Option<PaymentId>,
    pub response: Option<StoredResponse>,
    pub created_at: OffsetDateTime,
}

/// The answer a finished key replays, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The right to move one key forward, held by one request (or the completer) at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    pub key_id: i64,
    pub token: Uuid,
}

/// What [`PaymentStore::begin`] found.
#[derive(Debug)]
pub enum Begin {
    /// The key is this request's to work on, from its recovery point.
    Acquired(KeyRecord, Lock),
    /// The key exists and is not this request's: finished (replay), another request's (409), or
    /// first used with another request (422). The caller tells which.
    Existing(KeyRecord),
}

/// The moments that decide what [`PaymentStore::begin`] may do.
#[derive(Debug, Clone, Copy)]
pub struct BeginAt {
    pub now: OffsetDateTime,
    /// A finished key created before this has expired: it is replaced, as if new.
    pub expired_before: OffsetDateTime,
    /// A lock taken before this is stale: its holder is presumed dead, and the key is taken over.
    pub stale_before: OffsetDateTime,
}

/// What finishing a payment writes, in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    pub payment: PaymentId,
    pub status: PaymentStatus,
    pub provider_charge: &'a str,
    pub failure_code: Option<&'a str>,
    /// The answer to store on the key (ignored without a key).
    pub response: &'a StoredResponse,
    /// The `payment.succeeded` or `payment.failed` event, written to `outbox` in the same
    /// transaction.
    pub event: &'a OutboxEvent,
}

#[async_trait]
pub trait PaymentStore: Send + Sync + 'static {
    /// Phase 1: inserts the key at `started`, locked by this request; or, if the client
    /// already has it, replaces it when it is finished and expired, takes it over when it is
    /// unfinished, has this fingerprint and its lock is free or stale; or reports what is there.
    ///
    /// The first request with a key costs one statement (an upsert); only a key that exists
    /// costs more.
    async fn begin(
        &self,
        client: ClientId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        request: &PaymentRequest,
        at: BeginAt,
    ) -> Result<Begin, StoreError>;

    /// Phase 2 (atomic): writes the payment, `pending`, and moves the key to `payment_created`.
    async fn create_payment(&self, lock: Lock, payment: &Payment) -> Result<(), StoreError>;

    /// Phase 3 (atomic): records the provider's answer on the payment, stores the response to
    /// replay, writes the outbox event, moves the key to `finished` and unlocks it.
    async fn finish(&self, lock: Lock, finish: &Finish<'_>) -> Result<(), StoreError>;

    /// Without an idempotency key (the benchmark's baseline, `PAYMENTS_IDEMPOTENCY=off`): the
    /// payment alone.
    #[cfg(feature = "bench")]
    async fn insert_payment(&self, payment: &Payment) -> Result<(), StoreError>;

    /// Without an idempotency key: the provider's answer and the outbox event.
    #[cfg(feature = "bench")]
    async fn complete_payment(&self, finish: &Finish<'_>) -> Result<(), StoreError>;

    /// Gives the key up where it stands (a retryable failure): the next retry, or the completer
    /// after its grace period, resumes it. `now` is the key's last run.
    async fn unlock(&self, lock: Lock, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Locks the oldest unfinished key whose last run was before `idle_before` and whose lock is
    /// free or stale (before `stale_before`), for the completer.
    async fn lock_abandoned(
        &self,
        idle_before: OffsetDateTime,
        stale_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<(KeyRecord, Lock)>, StoreError>;

    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError>;

    /// A client's payments, newest first, after (older than) `before` if given.
    async fn payments(
        &self,
        client: ClientId,
        limit: u32,
        before: Option<PaymentId>,
    ) -> Result<Vec<Payment>, StoreError>;

    /// Deletes finished keys created before `before`, at most `limit` of them; returns how many.
    /// Payments are untouched.
    async fn delete_expired_keys(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, StoreError>;
}

/// The one place that chooses the store.
pub fn for_database(database: &Database) -> Arc<dyn PaymentStore> {
    match database {
        Database::Postgres(pool) => Arc::new(PostgresStore::new(pool.clone())),
        Database::Sqlite(pool) => Arc::new(SqliteStore::new(pool.clone())),
    }
}

/// The clients' API keys, in the `clients` table: a key's id is its client's id, which keys and
/// payments are scoped by.
pub fn clients(database: &Database) -> ApiKeys {
    ApiKeys::new(database.clone(), "clients")
}

/// The migrations for both engines, applied at start-up.
pub const MIGRATIONS: platform::db::Migrations = platform::db::Migrations {
    postgres: &sqlx::migrate!("./migrations/postgres"),
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
};

/// One row written means the lock was still ours.
fn held(rows: u64) -> Result<(), StoreError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::LockLost)
    }
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

fn recovery_point(text: &str) -> Result<RecoveryPoint, StoreError> {
    RecoveryPoint::parse(text).ok_or_else(|| corrupt(format!("recovery point {text:?}")))
}

fn payment_status(text: &str) -> Result<PaymentStatus, StoreError> {
    PaymentStatus::parse(text).ok_or_else(|| corrupt(format!("payment status {text:?}")))
}

fn stored_request(json: &str) -> Result<PaymentRequest, StoreError> {
    serde_json::from_str(json).map_err(|err| corrupt(format!("stored request: {err}")))
}

fn request_json(request: &PaymentRequest) -> String {
    serde_json::to_string(request).expect("a request serialises")
}
