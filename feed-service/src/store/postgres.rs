//! The PostgreSQL store.

use async_trait::async_trait;
use platform::outbox::{OutboxEvent, insert_postgres};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{
    Demotion, FeedStore, InsertedUser, NewUser, StoreError, StoredPost, TOP, count, handle,
    id_taken, post_id, post_row, user_id,
};
use crate::domain::{Account, Post, PostId, Profile, UserId};

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

type PostRow = (i64, i64, String, Option<String>, OffsetDateTime);

#[async_trait]
impl FeedStore for PostgresStore {
    async fn insert_user(&self, user: &NewUser) -> Result<InsertedUser, StoreError> {
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (id, handle, token_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (handle) DO NOTHING RETURNING id",
        )
        .bind(user.id.to_db())
        .bind(user.handle.as_str())
        .bind(&user.token_hash)
        .bind(user.created_at)
        .fetch_optional(&self.pool)
        .await
        .map_err(id_taken)?;
        Ok(match inserted {
            Some(_) => InsertedUser::Created,
            None => InsertedUser::HandleTaken,
        })
    }

    async fn account(&self, token_hash: &str) -> Result<Option<Account>, StoreError> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT id, handle FROM users WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(id, name)| {
            Ok(Account {
                id: user_id(id)?,
                handle: handle(&name)?,
            })
        })
        .transpose()
    }

    async fn user_exists(&self, id: UserId) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
                .bind(id.to_db())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn profile(&self, id: UserId) -> Result<Option<Profile>, StoreError> {
        let row: Option<(String, OffsetDateTime, i64, i64)> = sqlx::query_as(
            "SELECT handle, created_at, \
               (SELECT count(*) FROM follows WHERE followee_id = users.id), \
               (SELECT count(*) FROM follows WHERE follower_id = users.id) \
             FROM users WHERE id = $1",
        )
        .bind(id.to_db())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(name, created_at, followers, following)| {
            Ok(Profile {
                id,
                handle: handle(&name)?,
                followers: count(followers),
                following: count(following),
                created_at,
            })
        })
        .transpose()
    }

    async fn follow(
        &self,
        follower: UserId,
        followee: UserId,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError> {
        // One statement: the follow and the count move together, or neither does.
        let followers: Option<i64> = sqlx::query_scalar(
            "WITH added AS ( \
                 INSERT INTO follows (follower_id, followee_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING RETURNING followee_id) \
             UPDATE users SET follower_count = follower_count + 1 \
             WHERE id IN (SELECT followee_id FROM added) RETURNING follower_count",
        )
        .bind(follower.to_db())
        .bind(followee.to_db())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(followers.map(count))
    }

    async fn unfollow(
        &self,
        follower: UserId,
        followee: UserId,
        demotion: Option<&Demotion>,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let followers: Option<i64> = sqlx::query_scalar(
            "WITH removed AS ( \
                 DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2 \
                 RETURNING followee_id) \
             UPDATE users SET follower_count = follower_count - 1 \
             WHERE id IN (SELECT followee_id FROM removed) RETURNING follower_count",
        )
        .bind(follower.to_db())
        .bind(followee.to_db())
        .fetch_optional(&mut *tx)
        .await?;
        let followers = followers.map(count);
        if let Some(demotion) = demotion
            && demotion.crossed(followers)
        {
            insert_postgres(&mut tx, &demotion.event).await?;
        }
        tx.commit().await?;
        Ok(followers)
    }

    async fn insert_post(
        &self,
        post: &Post,
        event: Option<&OutboxEvent>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let followers: i64 = sqlx::query_scalar(
            "WITH inserted AS ( \
                 INSERT INTO posts (id, author_id, text, created_at) VALUES ($1, $2, $3, $4) \
                 RETURNING author_id) \
             SELECT follower_count FROM users WHERE id = (SELECT author_id FROM inserted)",
        )
        .bind(post.id.to_db())
        .bind(post.author.to_db())
        .bind(&post.text)
        .bind(post.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(id_taken)?;
        if let Some(event) = event {
            insert_postgres(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(count(followers))
    }

    async fn post(&self, id: PostId) -> Result<Option<StoredPost>, StoreError> {
        let row: Option<(i64, String, Option<String>, OffsetDateTime, bool)> = sqlx::query_as(
            "SELECT p.author_id, u.handle, p.text, p.created_at, p.deleted_at IS NOT NULL \
             FROM posts p JOIN users u ON u.id = p.author_id WHERE p.id = $1",
        )
        .bind(id.to_db())
        .fetch_optional(&self.pool)
        .await?;
        let Some((author, author_handle, text, created_at, deleted)) = row else {
            return Ok(None);
        };
        if deleted {
            return Ok(Some(StoredPost::Deleted {
                author: user_id(author)?,
            }));
        }
        post_row(id.to_db(), author, &author_handle, text, created_at)
            .map(|post| Some(StoredPost::Live(post)))
    }

    async fn delete_post(
        &self,
        id: PostId,
        now: OffsetDateTime,
        event: Option<&OutboxEvent>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query(
            "UPDATE posts SET text = NULL, deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.to_db())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if let (true, Some(event)) = (deleted, event) {
            insert_postgres(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn posts(&self, ids: &[PostId]) -> Result<Vec<Post>, StoreError> {
        let ids: Vec<i64> = ids.iter().map(|id| id.to_db()).collect();
        let rows: Vec<PostRow> = sqlx::query_as(
            "SELECT p.id, p.author_id, u.handle, p.text, p.created_at \
             FROM posts p JOIN users u ON u.id = p.author_id \
             WHERE p.id = ANY($1) AND p.deleted_at IS NULL",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, author, name, text, created_at)| {
                post_row(id, author, &name, text, created_at)
            })
            .collect()
    }

    async fn active_followers(
        &self,
        author: UserId,
        active_since: OffsetDateTime,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT f.follower_id FROM follows f JOIN users u ON u.id = f.follower_id \
             WHERE f.followee_id = $1 AND f.follower_id > $2 AND u.last_read_at >= $3 \
             ORDER BY f.follower_id LIMIT $4",
        )
        .bind(author.to_db())
        .bind(after.map_or(0, UserId::to_db))
        .bind(active_since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(user_id).collect()
    }

    async fn follower_count(&self, user: UserId) -> Result<u64, StoreError> {
        let followers: Option<i64> =
            sqlx::query_scalar("SELECT follower_count FROM users WHERE id = $1")
                .bind(user.to_db())
                .fetch_optional(&self.pool)
                .await?;
        Ok(followers.map_or(0, count))
    }

    async fn celebrity_page(
        &self,
        reader: UserId,
        threshold: u64,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<PostId>, StoreError> {
        // The pull query's bounded merge (home_page), over the celebrities only.
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT p.id \
             FROM (SELECT id FROM users WHERE id = $1 AND follower_count > $4 \
                   UNION ALL \
                   SELECT f.followee_id FROM follows f JOIN users u ON u.id = f.followee_id \
                   WHERE f.follower_id = $1 AND u.follower_count > $4) AS authors \
             CROSS JOIN LATERAL ( \
                 SELECT id FROM posts \
                 WHERE posts.author_id = authors.id AND posts.deleted_at IS NULL \
                   AND posts.id < $2 \
                 ORDER BY posts.id DESC LIMIT $3) AS p \
             ORDER BY p.id DESC LIMIT $3",
        )
        .bind(reader.to_db())
        .bind(below.map_or(TOP, PostId::to_db))
        .bind(i64::from(limit))
        .bind(i64::try_from(threshold).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(post_id).collect()
    }

    async fn followed_celebrities(
        &self,
        reader: UserId,
        threshold: u64,
    ) -> Result<Vec<UserId>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM users WHERE id = $1 AND follower_count > $2 \
             UNION ALL \
             SELECT f.followee_id FROM follows f JOIN users u ON u.id = f.followee_id \
             WHERE f.follower_id = $1 AND u.follower_count > $2",
        )
        .bind(reader.to_db())
        .bind(i64::try_from(threshold).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(user_id).collect()
    }

    async fn author_post_ids(
        &self,
        author: UserId,
        above: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<PostId>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM posts WHERE author_id = $1 AND deleted_at IS NULL AND id > $2 \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(author.to_db())
        .bind(above.map_or(0, PostId::to_db))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(post_id).collect()
    }

    async fn last_read(&self, user: UserId) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(sqlx::query_scalar::<_, Option<OffsetDateTime>>(
            "SELECT last_read_at FROM users WHERE id = $1",
        )
        .bind(user.to_db())
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    async fn mark_read(&self, user: UserId, now: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET last_read_at = $2 WHERE id = $1")
            .bind(user.to_db())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn home_page(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Post>, StoreError> {
        // The merge that fan-out on read is, written so that its cost is bounded by the page:
        // for the reader and each author they follow, the newest `limit` live posts below the
        // cursor (one short range scan of posts_by_author each, LATERAL), then the newest
        // `limit` of those, and only then the authors' handles (one primary-key lookup per post
        // kept; joined inside, PostgreSQL joins users once per author). The plainer
        // `WHERE author_id IN (…) ORDER BY id DESC LIMIT n` lets the planner walk the whole
        // table backwards by id, filtering by author: fast when the authors post a lot, and
        // slowest when they are quiet, since it reads every newer post by anyone (DESIGN.md §6
        // measures both plans).
        let rows: Vec<PostRow> = sqlx::query_as(
            "SELECT p.id, p.author_id, u.handle, p.text, p.created_at \
             FROM (SELECT p.id, p.author_id, p.text, p.created_at \
                   FROM (SELECT $1::bigint AS author_id \
                         UNION ALL \
                         SELECT followee_id FROM follows WHERE follower_id = $1) AS authors \
                   CROSS JOIN LATERAL ( \
                       SELECT id, author_id, text, created_at FROM posts \
                       WHERE posts.author_id = authors.author_id \
                         AND posts.deleted_at IS NULL AND posts.id < $2 \
                       ORDER BY posts.id DESC LIMIT $3) AS p \
                   ORDER BY p.id DESC LIMIT $3) AS p \
             JOIN users u ON u.id = p.author_id \
             ORDER BY p.id DESC",
        )
        .bind(reader.to_db())
        .bind(below.map_or(TOP, PostId::to_db))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, author, name, text, created_at)| {
                post_row(id, author, &name, text, created_at)
            })
            .collect()
    }
}
