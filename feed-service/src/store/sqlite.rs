//! The embedded SQLite store: the PostgreSQL store's statements, with timestamps as INTEGER
//! milliseconds, except the home page (below).

use async_trait::async_trait;
use platform::{
    db::{from_unix_millis, unix_millis},
    outbox::{OutboxEvent, insert_sqlite},
};
use sqlx::SqlitePool;
use time::OffsetDateTime;

use super::{
    Demotion, FeedStore, InsertedUser, NewUser, StoreError, StoredPost, TOP, count, handle,
    id_taken, post_id, post_row, user_id,
};
use crate::domain::{Account, Post, PostId, Profile, UserId};

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

type PostRow = (i64, i64, String, Option<String>, i64);

#[async_trait]
impl FeedStore for SqliteStore {
    async fn insert_user(&self, user: &NewUser) -> Result<InsertedUser, StoreError> {
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (id, handle, token_hash, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (handle) DO NOTHING RETURNING id",
        )
        .bind(user.id.to_db())
        .bind(user.handle.as_str())
        .bind(&user.token_hash)
        .bind(unix_millis(user.created_at))
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
            sqlx::query_as("SELECT id, handle FROM users WHERE token_hash = ?1")
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
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)")
                .bind(id.to_db())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn profile(&self, id: UserId) -> Result<Option<Profile>, StoreError> {
        let row: Option<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT handle, created_at, \
               (SELECT count(*) FROM follows WHERE followee_id = users.id), \
               (SELECT count(*) FROM follows WHERE follower_id = users.id) \
             FROM users WHERE id = ?1",
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
                created_at: from_unix_millis(created_at),
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
        let mut tx = self.pool.begin().await?;
        let added = sqlx::query(
            "INSERT INTO follows (follower_id, followee_id, created_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(follower.to_db())
        .bind(followee.to_db())
        .bind(unix_millis(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        let followers = match added {
            true => Some(count_followers(&mut tx, followee, 1).await?),
            false => None,
        };
        tx.commit().await?;
        Ok(followers)
    }

    async fn unfollow(
        &self,
        follower: UserId,
        followee: UserId,
        demotion: Option<&Demotion>,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let removed =
            sqlx::query("DELETE FROM follows WHERE follower_id = ?1 AND followee_id = ?2")
                .bind(follower.to_db())
                .bind(followee.to_db())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
        let followers = match removed {
            true => Some(count_followers(&mut tx, followee, -1).await?),
            false => None,
        };
        if let Some(demotion) = demotion
            && demotion.crossed(followers)
        {
            insert_sqlite(&mut tx, &demotion.event).await?;
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
        sqlx::query("INSERT INTO posts (id, author_id, text, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(post.id.to_db())
            .bind(post.author.to_db())
            .bind(&post.text)
            .bind(unix_millis(post.created_at))
            .execute(&mut *tx)
            .await
            .map_err(id_taken)?;
        let followers: i64 = sqlx::query_scalar("SELECT follower_count FROM users WHERE id = ?1")
            .bind(post.author.to_db())
            .fetch_one(&mut *tx)
            .await?;
        if let Some(event) = event {
            insert_sqlite(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(count(followers))
    }

    async fn post(&self, id: PostId) -> Result<Option<StoredPost>, StoreError> {
        let row: Option<(i64, String, Option<String>, i64, bool)> = sqlx::query_as(
            "SELECT p.author_id, u.handle, p.text, p.created_at, p.deleted_at IS NOT NULL \
             FROM posts p JOIN users u ON u.id = p.author_id WHERE p.id = ?1",
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
        post_row(
            id.to_db(),
            author,
            &author_handle,
            text,
            from_unix_millis(created_at),
        )
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
            "UPDATE posts SET text = NULL, deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
        )
        .bind(id.to_db())
        .bind(unix_millis(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if let (true, Some(event)) = (deleted, event) {
            insert_sqlite(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn posts(&self, ids: &[PostId]) -> Result<Vec<Post>, StoreError> {
        // The ids as one JSON array, unpacked by json_each: one statement whatever the count,
        // where `IN (?, ?, …)` would be a new statement (and a new prepared plan) per count.
        let ids = format!(
            "[{}]",
            ids.iter()
                .map(|id| id.get().to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let rows: Vec<PostRow> = sqlx::query_as(
            "SELECT p.id, p.author_id, u.handle, p.text, p.created_at \
             FROM posts p JOIN users u ON u.id = p.author_id \
             WHERE p.id IN (SELECT value FROM json_each(?1)) AND p.deleted_at IS NULL",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, author, name, text, created_at)| {
                post_row(id, author, &name, text, from_unix_millis(created_at))
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
             WHERE f.followee_id = ?1 AND f.follower_id > ?2 AND u.last_read_at >= ?3 \
             ORDER BY f.follower_id LIMIT ?4",
        )
        .bind(author.to_db())
        .bind(after.map_or(0, UserId::to_db))
        .bind(unix_millis(active_since))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(user_id).collect()
    }

    async fn follower_count(&self, user: UserId) -> Result<u64, StoreError> {
        let followers: Option<i64> =
            sqlx::query_scalar("SELECT follower_count FROM users WHERE id = ?1")
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
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT p.id FROM posts p \
             WHERE p.deleted_at IS NULL AND p.id < ?2 \
               AND p.author_id IN ( \
                   SELECT id FROM users WHERE id = ?1 AND follower_count > ?4 \
                   UNION ALL \
                   SELECT f.followee_id FROM follows f JOIN users u ON u.id = f.followee_id \
                   WHERE f.follower_id = ?1 AND u.follower_count > ?4) \
             ORDER BY p.id DESC LIMIT ?3",
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
            "SELECT id FROM users WHERE id = ?1 AND follower_count > ?2 \
             UNION ALL \
             SELECT f.followee_id FROM follows f JOIN users u ON u.id = f.followee_id \
             WHERE f.follower_id = ?1 AND u.follower_count > ?2",
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
            "SELECT id FROM posts WHERE author_id = ?1 AND deleted_at IS NULL AND id > ?2 \
             ORDER BY id DESC LIMIT ?3",
        )
        .bind(author.to_db())
        .bind(above.map_or(0, PostId::to_db))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(post_id).collect()
    }

    async fn last_read(&self, user: UserId) -> Result<Option<OffsetDateTime>, StoreError> {
        let at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT last_read_at FROM users WHERE id = ?1")
                .bind(user.to_db())
                .fetch_optional(&self.pool)
                .await?;
        Ok(at.flatten().map(from_unix_millis))
    }

    async fn mark_read(&self, user: UserId, now: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET last_read_at = ?2 WHERE id = ?1")
            .bind(user.to_db())
            .bind(unix_millis(now))
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
        // SQLite has no LATERAL, so this is the plain form of the merge (the PostgreSQL store
        // explains why it avoids it): SQLite reads the authors' posts below the cursor through
        // posts_by_author, or walks posts by id, and keeps the newest. Fine for the embedded
        // scale; the bounded form is PostgreSQL's.
        let rows: Vec<PostRow> = sqlx::query_as(
            "SELECT p.id, p.author_id, u.handle, p.text, p.created_at \
             FROM posts p JOIN users u ON u.id = p.author_id \
             WHERE p.deleted_at IS NULL AND p.id < ?2 \
               AND p.author_id IN (SELECT ?1 UNION ALL \
                                   SELECT followee_id FROM follows WHERE follower_id = ?1) \
             ORDER BY p.id DESC LIMIT ?3",
        )
        .bind(reader.to_db())
        .bind(below.map_or(TOP, PostId::to_db))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, author, name, text, created_at)| {
                post_row(id, author, &name, text, from_unix_millis(created_at))
            })
            .collect()
    }
}

/// Adds `change` to `user`'s follower count, in the follow's transaction, and answers the new
/// count.
async fn count_followers(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    user: UserId,
    change: i64,
) -> Result<u64, StoreError> {
    let followers: i64 = sqlx::query_scalar(
        "UPDATE users SET follower_count = follower_count + ?2 WHERE id = ?1 \
         RETURNING follower_count",
    )
    .bind(user.to_db())
    .bind(change)
    .fetch_one(&mut **tx)
    .await?;
    Ok(count(followers))
}
