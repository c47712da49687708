//! The PostgreSQL store.

use async_trait::async_trait;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{LinkStore, StoreError, VisitDelta, count, limit, map_insert_error};
use crate::domain::{Link, NewLink, OwnerId, ShortCode};

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    code: String,
    url: String,
    owner_key_id: i64,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
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
            created_at: self.created_at,
            expires_at: self.expires_at,
            max_visits: limit(self.max_visits),
            visits: count(self.visits),
            bot_visits: count(self.bot_visits),
        }
    }
}

#[async_trait]
impl LinkStore for PostgresStore {
    async fn lease_ids(&self, count: u64) -> Result<u64, StoreError> {
        // The row lock serialises concurrent leases; each returns the start of its own block.
        let start: i64 = sqlx::query_scalar(
            "UPDATE id_allocator SET next_id = next_id + $1 WHERE name = 'links' \
             RETURNING next_id - $1",
        )
        .bind(i64::try_from(count).expect("block sizes are small"))
        .fetch_one(&self.pool)
        .await?;
        Ok(start as u64)
    }

    async fn insert_link(&self, link: &NewLink) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO links (code, url, owner_key_id, created_at, expires_at, max_visits) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(link.code.as_str())
        .bind(link.url.as_str())
        .bind(link.owner.0)
        .bind(link.created_at)
        .bind(link.expires_at)
        .bind(link.max_visits.map(i64::from))
        .execute(&self.pool)
        .await
        .map_err(map_insert_error)?;
        Ok(())
    }

    async fn find_link(&self, code: &ShortCode) -> Result<Option<Link>, StoreError> {
        let row: Option<LinkRow> = sqlx::query_as(
            "SELECT code, url, owner_key_id, created_at, expires_at, max_visits, visits, bot_visits \
             FROM links WHERE code = $1 AND deleted_at IS NULL",
        )
        .bind(code.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(LinkRow::into_link))
    }

    async fn delete_link(&self, code: &ShortCode, at: OffsetDateTime) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE links SET deleted_at = $2 WHERE code = $1 AND deleted_at IS NULL")
                .bind(code.as_str())
                .bind(at)
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn consume_visit(
        &self,
        code: &ShortCode,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // One conditional UPDATE: the row lock makes the check and the increment atomic, so
        // concurrent redirects queue on the row and the (max_visits + 1)th finds the limit met.
        let result = sqlx::query(
            "UPDATE links SET visits = visits + 1 \
             WHERE code = $1 AND deleted_at IS NULL AND visits < max_visits \
               AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(code.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn add_visits(&self, batch: &[(ShortCode, VisitDelta)]) -> Result<(), StoreError> {
        // Two instances flushing the same hot links at once would each lock those rows in
        // whatever order its join produced, and could deadlock. Locking them first, in code
        // order, makes every flush take the locks in the same order.
        let mut sorted: Vec<_> = batch.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let codes: Vec<&str> = sorted.iter().map(|(code, _)| code.as_str()).collect();
        let visits: Vec<i64> = sorted.iter().map(|(_, d)| d.visits as i64).collect();
        let bots: Vec<i64> = sorted.iter().map(|(_, d)| d.bot_visits as i64).collect();

        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM links WHERE code = ANY($1) ORDER BY code FOR UPDATE")
            .bind(&codes)
            .execute(&mut *tx)
            .await?;
        // Then one statement for the whole batch: the arrays are unnested into a join.
        sqlx::query(
            "UPDATE links AS l \
             SET visits = l.visits + d.visits, bot_visits = l.bot_visits + d.bot_visits \
             FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS d(code, visits, bot_visits) \
             WHERE l.code = d.code",
        )
        .bind(&codes)
        .bind(visits)
        .bind(bots)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
