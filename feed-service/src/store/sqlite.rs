//! The embedded SQLite store: the PostgreSQL store's statements, with timestamps as INTEGER
//! milliseconds, except the home page (below).

use async_trait::async_trait;
use platform::db::{from_unix_millis, unix_millis};
use sqlx::SqlitePool;
use time::OffsetDateTime;

use super::{
    FeedStore, InsertedUser, NewUser, StoreError, StoredPost, TOP, count, handle, id_taken,
    post_row, user_id,
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
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO follows (follower_id, followee_id, created_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(follower.to_db())
        .bind(followee.to_db())
        .bind(unix_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn unfollow(&self, follower: UserId, followee: UserId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM follows WHERE follower_id = ?1 AND followee_id = ?2")
            .bind(follower.to_db())
            .bind(followee.to_db())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_post(&self, post: &Post) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO posts (id, author_id, text, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(post.id.to_db())
            .bind(post.author.to_db())
            .bind(&post.text)
            .bind(unix_millis(post.created_at))
            .execute(&self.pool)
            .await
            .map_err(id_taken)?;
        Ok(())
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

    async fn delete_post(&self, id: PostId, now: OffsetDateTime) -> Result<bool, StoreError> {
        let deleted = sqlx::query(
            "UPDATE posts SET text = NULL, deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
        )
        .bind(id.to_db())
        .bind(unix_millis(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(deleted > 0)
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
