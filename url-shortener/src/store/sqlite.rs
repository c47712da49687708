//! The embedded SQLite store. Timestamps are stored as INTEGER milliseconds.

use async_trait::async_trait;
use platform::db::{from_unix_millis, unix_millis};
use sqlx::SqlitePool;
use time::OffsetDateTime;

use super::{LinkStore, StoreError, VisitDelta, count, limit, map_insert_error};
use crate::domain::{Link, NewLink, OwnerId, ShortCode};

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    code: String,
    url: String,
    owner_key_id: i64,
    created_at: i64,
    expires_at: Option<i64>,
    max_visits: Option<i64>,
    visits: i64,
    bot_visits: i64,
}

// A method of the row rather than `From` for the domain's `Link`: the conversion belongs to the
// store, which knows both, and the domain knows nothing of rows.
impl LinkRow {
    fn into_link(self) -> Link {
        Link {
            code: ShortCode::parse(&self.code).expect("stored codes are well-formed"),
            url: self.url,
            owner: OwnerId(self.owner_key_id),
            created_at: from_unix_millis(self.created_at),
            expires_at: self.expires_at.map(from_unix_millis),
            max_visits: limit(self.max_visits),
            visits: count(self.visits),
            bot_visits: count(self.bot_visits),
        }
    }
}

#[async_trait]
impl LinkStore for SqliteStore {
    async fn lease_ids(&self, count: u64) -> Result<u64, StoreError> {
        // A single statement takes SQLite's write lock for its duration, so leases are atomic.
        let start: i64 = sqlx::query_scalar(
            "UPDATE id_allocator SET next_id = next_id + ?1 WHERE name = 'links' \
             RETURNING next_id - ?1",
        )
        .bind(i64::try_from(count).expect("block sizes are small"))
        .fetch_one(&self.pool)
        .await?;
        Ok(start as u64)
    }

    async fn insert_link(&self, link: &NewLink) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO links (code, url, owner_key_id, created_at, expires_at, max_visits) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(link.code.as_str())
        .bind(link.url.as_str())
        .bind(link.owner.0)
        .bind(unix_millis(link.created_at))
        .bind(link.expires_at.map(unix_millis))
        .bind(link.max_visits.map(i64::from))
        .execute(&self.pool)
        .await
        .map_err(map_insert_error)?;
        Ok(())
    }

    async fn find_link(&self, code: &ShortCode) -> Result<Option<Link>, StoreError> {
        let row: Option<LinkRow> = sqlx::query_as(
            "SELECT code, url, owner_key_id, created_at, expires_at, max_visits, visits, bot_visits \
             FROM links WHERE code = ?1 AND deleted_at IS NULL",
        )
        .bind(code.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(LinkRow::into_link))
    }

    async fn delete_link(&self, code: &ShortCode, at: OffsetDateTime) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE links SET deleted_at = ?2 WHERE code = ?1 AND deleted_at IS NULL")
                .bind(code.as_str())
                .bind(unix_millis(at))
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn consume_visit(
        &self,
        code: &ShortCode,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // SQLite runs one writer at a time, so the check and the increment in this statement
        // cannot interleave with another redirect's.
        let result = sqlx::query(
            "UPDATE links SET visits = visits + 1 \
             WHERE code = ?1 AND deleted_at IS NULL AND visits < max_visits \
               AND (expires_at IS NULL OR expires_at > ?2)",
        )
        .bind(code.as_str())
        .bind(unix_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn add_visits(&self, batch: &[(ShortCode, VisitDelta)]) -> Result<(), StoreError> {
        // SQLite has no arrays to unnest; one prepared UPDATE per link inside one transaction
        // costs one fsync for the whole batch, which is what matters.
        let mut tx = self.pool.begin().await?;
        for (code, delta) in batch {
            sqlx::query(
                "UPDATE links SET visits = visits + ?2, bot_visits = bot_visits + ?3 \
                 WHERE code = ?1",
            )
            .bind(code.as_str())
            .bind(delta.visits as i64)
            .bind(delta.bot_visits as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
