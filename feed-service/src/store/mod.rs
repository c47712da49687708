//! Where users, follows and posts are kept: one trait, one module per engine, and
//! [`for_database`], the one place that picks between them.
//!
//! The database is the source of truth. The pull strategy reads home timelines straight from it
//! ([`FeedStore::home_page`]); push and hybrid keep timelines in a cache (`src/timeline/cache/`)
//! rebuilt from these same tables, and learn of new and deleted posts from outbox events written
//! in the transaction that writes the post.

mod faulty;
mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use platform::{db::Database, outbox::OutboxEvent};
use time::OffsetDateTime;

pub use self::{faulty::FaultyStore, postgres::PostgresStore, sqlite::SqliteStore};
use crate::domain::{Account, Handle, Post, PostId, Profile, UserId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with this id exists already: another instance made the same id (two instances
    /// configured with one `FEED_INSTANCE_ID`), or this one did before a restart. Nothing was
    /// written; the caller tries again with a new id.
    #[error("the id is taken")]
    IdTaken,
    #[error("a stored row is corrupt: {0}")]
    Corrupt(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The timelines or the post cache (`src/timeline/`): caches of these tables, whose errors
    /// travel with the store's since every caller answers them alike (a 500, logged; a 503 when
    /// the cache is unavailable, [`StoreError::unavailable`]).
    #[error("timeline or post cache error")]
    Cache(#[from] platform::cache::CacheError),
    /// The database's fault switch is on ([`FaultyStore`]): as if it were down.
    #[error(transparent)]
    Fault(#[from] platform::fault::Unreachable),
}

impl StoreError {
    /// The dependency that is down or not answering, if that is what failed: the database or the
    /// cache unreachable, timed out, or its connection lost, whether by a fault switch or for
    /// real. The request may succeed once it is back, so it is answered 503, not 500
    /// (`src/error.rs`).
    pub fn unavailable(&self) -> Option<&'static str> {
        use platform::cache::CacheError;
        match self {
            Self::Fault(fault) => Some(fault.dependency),
            Self::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            ) => Some("database"),
            Self::Cache(CacheError::Fault(fault)) => Some(fault.dependency),
            Self::Cache(CacheError::TimedOut(_)) => Some("redis"),
            Self::Cache(CacheError::Redis(err))
                if err.is_io_error()
                    || err.is_timeout()
                    || err.is_connection_refusal()
                    || err.is_connection_dropped() =>
            {
                Some("redis")
            }
            _ => None,
        }
    }
}

/// A user to insert.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub handle: Handle,
    /// `ApiKey::hash` of the user's token.
    pub token_hash: String,
    pub created_at: OffsetDateTime,
}

/// What [`FeedStore::insert_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertedUser {
    Created,
    HandleTaken,
}

/// A post as stored: live, or a tombstone that remembers only its author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredPost {
    Live(Post),
    Deleted { author: UserId },
}

/// Under hybrid, what an unfollow announces when it takes an author back below the celebrity
/// threshold: their posts made as a celebrity are in no timeline (`src/fanout.rs`).
#[derive(Debug, Clone)]
pub struct Demotion {
    /// The threshold: an author with more followers is a celebrity.
    pub threshold: u64,
    pub event: OutboxEvent,
}

impl Demotion {
    /// Whether an unfollow that left `followers` crossed the threshold.
    pub fn crossed(&self, followers: Option<u64>) -> bool {
        followers == Some(self.threshold)
    }
}

#[async_trait]
pub trait FeedStore: Send + Sync + 'static {
    /// Inserts the user, or nothing if the handle is taken; [`StoreError::IdTaken`] if the id is.
    async fn insert_user(&self, user: &NewUser) -> Result<InsertedUser, StoreError>;

    /// The user whose token hashes to `token_hash`.
    async fn account(&self, token_hash: &str) -> Result<Option<Account>, StoreError>;

    async fn user_exists(&self, id: UserId) -> Result<bool, StoreError>;

    /// The public profile, with follower and following counts (two counts over the follows
    /// indexes: fine at this size; a counter column kept by triggers is the next step).
    async fn profile(&self, id: UserId) -> Result<Option<Profile>, StoreError>;

    /// Makes `follower` follow `followee`, counting them in `followee`'s `follower_count` in the
    /// same transaction; following again changes nothing. If the follow is new, the followee's
    /// count after it, from the same statement (so the one follow that crosses a threshold is
    /// the one that sees it crossed).
    async fn follow(
        &self,
        follower: UserId,
        followee: UserId,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError>;

    /// Makes `follower` stop following `followee`, if they did (and counts one follower fewer).
    /// If they did, the followee's count after it. With a [`Demotion`], an unfollow that leaves
    /// the followee with exactly its threshold of followers (a celebrity no longer) writes its
    /// event to the outbox in the same transaction.
    async fn unfollow(
        &self,
        follower: UserId,
        followee: UserId,
        demotion: Option<&Demotion>,
    ) -> Result<Option<u64>, StoreError>;

    /// Inserts the post, and `event` into the outbox in the same transaction;
    /// [`StoreError::IdTaken`] if its id is taken (and then neither is written). Answers the
    /// author's follower count, read in the same transaction: the hybrid needs it to know where
    /// the post goes, and a query of its own would be another round trip per post.
    async fn insert_post(
        &self,
        post: &Post,
        event: Option<&OutboxEvent>,
    ) -> Result<u64, StoreError>;

    async fn post(&self, id: PostId) -> Result<Option<StoredPost>, StoreError>;

    /// Turns a live post into a tombstone, erasing its text, and writes `event` into the outbox
    /// in the same transaction. False, writing nothing, if it was deleted before.
    async fn delete_post(
        &self,
        id: PostId,
        now: OffsetDateTime,
        event: Option<&OutboxEvent>,
    ) -> Result<bool, StoreError>;

    /// The live posts among `ids`, in one query (hydrating a page of a cached timeline), in no
    /// particular order.
    async fn posts(&self, ids: &[PostId]) -> Result<Vec<Post>, StoreError>;

    /// Up to `limit` followers of `author` whose last feed read is at or after `active_since`,
    /// with ids above `after`, in id order: one batch of a fan-out, keyset-paginated.
    async fn active_followers(
        &self,
        author: UserId,
        active_since: OffsetDateTime,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError>;

    /// How many follow `user` (the counter column; 0 for an unknown user).
    async fn follower_count(&self, user: UserId) -> Result<u64, StoreError>;

    /// The hybrid strategy's read-time half: up to `limit` live posts below `below` by the
    /// authors among `reader` and those `reader` follows that have more than `threshold`
    /// followers, newest first.
    async fn celebrity_page(
        &self,
        reader: UserId,
        threshold: u64,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<PostId>, StoreError>;

    /// The authors among `reader` and those `reader` follows that have more than `threshold`
    /// followers: whose posts the hybrid merges in at read time.
    async fn followed_celebrities(
        &self,
        reader: UserId,
        threshold: u64,
    ) -> Result<Vec<UserId>, StoreError>;

    /// The ids of `author`'s newest live posts above `above` (all if `None`), at most `limit`,
    /// newest first: what a follow backfills and an unfollow removes.
    async fn author_post_ids(
        &self,
        author: UserId,
        above: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<PostId>, StoreError>;

    /// When `user` last read their home feed (to the hour), `None` if never.
    async fn last_read(&self, user: UserId) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Records a home-feed read at `now`.
    async fn mark_read(&self, user: UserId, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Fan-out on read: up to `limit` live posts by `reader` and by everyone `reader` follows,
    /// strictly below `below` (from the top if `None`), newest first.
    async fn home_page(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Post>, StoreError>;

    /// The ids of [`home_page`](Self::home_page), without the authors' handles: what a timeline
    /// is rebuilt from.
    async fn home_page_ids(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<PostId>, StoreError> {
        Ok(self
            .home_page(reader, below, limit)
            .await?
            .into_iter()
            .map(|post| post.id)
            .collect())
    }
}

/// The one place that chooses the store.
pub fn for_database(database: &Database) -> Arc<dyn FeedStore> {
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

/// Where a page starts when no cursor is given: above every id (ids stop at 2^53).
const TOP: i64 = i64::MAX;

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

fn user_id(value: i64) -> Result<UserId, StoreError> {
    UserId::from_db(value).ok_or_else(|| corrupt(format!("user id {value}")))
}

fn post_id(value: i64) -> Result<PostId, StoreError> {
    PostId::from_db(value).ok_or_else(|| corrupt(format!("post id {value}")))
}

fn handle(text: &str) -> Result<Handle, StoreError> {
    Handle::parse(text).map_err(|_| corrupt(format!("handle {text:?}")))
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// An insert's unique violation is a taken id: the handle's is absorbed by `ON CONFLICT (handle)
/// DO NOTHING`, and the token's hash cannot collide (160 random bits), which leaves the id.
fn id_taken(err: sqlx::Error) -> StoreError {
    if platform::db::is_unique_violation(&err) {
        StoreError::IdTaken
    } else {
        StoreError::Database(err)
    }
}

/// A row of the feed queries, back into a post.
fn post_row(
    id: i64,
    author: i64,
    author_handle: &str,
    text: Option<String>,
    created_at: OffsetDateTime,
) -> Result<Post, StoreError> {
    Ok(Post {
        id: post_id(id)?,
        author: user_id(author)?,
        author_handle: handle(author_handle)?,
        text: text.ok_or_else(|| corrupt(format!("live post {id} without text")))?,
        created_at,
    })
}
