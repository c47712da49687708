//! The outbox on SQLite: the PostgreSQL statements in SQLite's types (times as INTEGER
//! milliseconds, UUIDs as hyphenated TEXT).
//!
//! A claim needs no `SKIP LOCKED` here: SQLite has one writer at a time, so two claims are
//! serialised by the database and the second sees the first's rows as taken.

use async_trait::async_trait;
use sqlx::{SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use uuid::{Uuid, fmt::Hyphenated};

use super::{BACKLOG, OutboxEvent, Table};
use crate::db::{from_unix_millis, unix_millis};

/// Inserts `event` into the system's `outbox` table inside the caller's transaction.
pub async fn insert_sqlite(
    conn: &mut SqliteConnection,
    event: &OutboxEvent,
) -> Result<(), sqlx::Error> {
    insert_all_sqlite(conn, [event]).await
}

/// Inserts `events`, in their order, into the system's `outbox` table inside the caller's
/// transaction, in one statement: the rows bound as one JSON array, payloads in hex.
pub async fn insert_all_sqlite<'a>(
    conn: &mut SqliteConnection,
    events: impl IntoIterator<Item = &'a OutboxEvent>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<serde_json::Value> = events
        .into_iter()
        .map(|event| {
            serde_json::json!([
                event.event_id.hyphenated().to_string(),
                event.topic,
                event.key,
                event.event_type,
                hex::encode(&event.payload),
                unix_millis(event.created_at),
            ])
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, message_key, event_type, payload, created_at) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, unhex(value ->> 4), \
           value ->> 5 \
         FROM json_each(?1) ORDER BY key",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) struct SqliteOutbox {
    pool: SqlitePool,
}

impl SqliteOutbox {
    pub(super) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

const EVENT_COLUMNS: &str = "id, event_id, topic, message_key, event_type, payload, created_at";

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    event_id: Hyphenated,
    topic: String,
    message_key: String,
    event_type: String,
    payload: Vec<u8>,
    created_at: i64,
}

impl From<EventRow> for OutboxEvent {
    fn from(row: EventRow) -> Self {
        OutboxEvent {
            event_id: row.event_id.into_uuid(),
            topic: row.topic,
            key: row.message_key,
            event_type: row.event_type,
            payload: row.payload,
            created_at: from_unix_millis(row.created_at),
        }
    }
}

#[async_trait]
impl Table for SqliteOutbox {
    async fn claim(
        &self,
        claim: Uuid,
        limit: u32,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Vec<OutboxEvent>, sqlx::Error> {
        let mut rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET claimed_by = ?1, claimed_until = ?2 \
             WHERE id IN (SELECT id FROM outbox \
                          WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < ?3) \
                          ORDER BY id LIMIT ?4) \
             RETURNING {EVENT_COLUMNS}"
        )))
        .bind(claim.hyphenated())
        .bind(unix_millis(lease_until))
        .bind(unix_millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        // RETURNING gives no order.
        rows.sort_by_key(|row| row.id);
        Ok(rows.into_iter().map(OutboxEvent::from).collect())
    }

    async fn mark_published(&self, claim: Uuid, now: OffsetDateTime) -> Result<u64, sqlx::Error> {
        let marked = sqlx::query(
            "UPDATE outbox SET published_at = ?1, claimed_by = NULL, claimed_until = NULL \
             WHERE claimed_by = ?2 AND published_at IS NULL",
        )
        .bind(unix_millis(now))
        .bind(claim.hyphenated())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(marked)
    }

    async fn release(&self, claim: Uuid) -> Result<u64, sqlx::Error> {
        let released = sqlx::query(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL \
             WHERE claimed_by = ?1 AND published_at IS NULL",
        )
        .bind(claim.hyphenated())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(released)
    }

    async fn backlog(&self) -> Result<(u64, Option<OffsetDateTime>), sqlx::Error> {
        let (pending, oldest): (i64, Option<i64>) =
            sqlx::query_as(BACKLOG).fetch_one(&self.pool).await?;
        Ok((pending.max(0) as u64, oldest.map(from_unix_millis)))
    }

    async fn delete_published(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, sqlx::Error> {
        let deleted = sqlx::query(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
             WHERE published_at < ?1 AND id < coalesce((SELECT id FROM outbox \
               WHERE published_at >= ?1 OR (published_at IS NULL AND created_at >= ?1) \
               ORDER BY id LIMIT 1), 9223372036854775807) \
             ORDER BY id LIMIT ?2)",
        )
        .bind(unix_millis(before))
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(deleted)
    }

    async fn unpublished(&self, limit: u32) -> Result<Vec<OutboxEvent>, sqlx::Error> {
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?1"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(OutboxEvent::from).collect())
    }
}
