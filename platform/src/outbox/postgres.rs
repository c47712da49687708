//! The outbox on PostgreSQL.
//!
//! A claim selects its rows `FOR UPDATE SKIP LOCKED`: two relays claiming at once take different
//! rows, where plain `FOR UPDATE` would have the second wait for the first to commit and then find
//! those rows taken. Read committed is enough, since the `UPDATE` re-checks its rows' latest
//! versions.

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{BACKLOG, OutboxEvent, Table};

/// Inserts `event` into the system's `outbox` table inside the caller's transaction.
pub async fn insert_postgres(
    conn: &mut PgConnection,
    event: &OutboxEvent,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, message_key, event_type, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event.event_id)
    .bind(&event.topic)
    .bind(&event.key)
    .bind(&event.event_type)
    .bind(&event.payload)
    .bind(event.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) struct PostgresOutbox {
    pool: PgPool,
}

impl PostgresOutbox {
    pub(super) fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

const EVENT_COLUMNS: &str = "id, event_id, topic, message_key, event_type, payload, created_at";

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    event_id: Uuid,
    topic: String,
    message_key: String,
    event_type: String,
    payload: Vec<u8>,
    created_at: OffsetDateTime,
}

impl From<EventRow> for OutboxEvent {
    fn from(row: EventRow) -> Self {
        OutboxEvent {
            event_id: row.event_id,
            topic: row.topic,
            key: row.message_key,
            event_type: row.event_type,
            payload: row.payload,
            created_at: row.created_at,
        }
    }
}

#[async_trait]
impl Table for PostgresOutbox {
    async fn claim(
        &self,
        claim: Uuid,
        limit: u32,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Vec<OutboxEvent>, sqlx::Error> {
        let mut rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET claimed_by = $1, claimed_until = $2 \
             WHERE id IN (SELECT id FROM outbox \
                          WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < $3) \
                          ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING {EVENT_COLUMNS}"
        )))
        .bind(claim)
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        // RETURNING gives no order.
        rows.sort_by_key(|row| row.id);
        Ok(rows.into_iter().map(OutboxEvent::from).collect())
    }

    async fn mark_published(&self, claim: Uuid, now: OffsetDateTime) -> Result<u64, sqlx::Error> {
        let marked = sqlx::query(
            "UPDATE outbox SET published_at = $1, claimed_by = NULL, claimed_until = NULL \
             WHERE claimed_by = $2 AND published_at IS NULL",
        )
        .bind(now)
        .bind(claim)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(marked)
    }

    async fn release(&self, claim: Uuid) -> Result<u64, sqlx::Error> {
        let released = sqlx::query(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL \
             WHERE claimed_by = $1 AND published_at IS NULL",
        )
        .bind(claim)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(released)
    }

    async fn backlog(&self) -> Result<(u64, Option<OffsetDateTime>), sqlx::Error> {
        let (pending, oldest): (i64, Option<OffsetDateTime>) =
            sqlx::query_as(BACKLOG).fetch_one(&self.pool).await?;
        Ok((pending.max(0) as u64, oldest))
    }

    async fn delete_published(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, sqlx::Error> {
        let deleted = sqlx::query(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
             WHERE published_at < $1 AND id < coalesce((SELECT id FROM outbox \
               WHERE published_at >= $1 OR (published_at IS NULL AND created_at >= $1) \
               ORDER BY id LIMIT 1), 9223372036854775807) \
             ORDER BY id LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(deleted)
    }

    async fn unpublished(&self, limit: u32) -> Result<Vec<OutboxEvent>, sqlx::Error> {
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(OutboxEvent::from).collect())
    }
}
