//! The store behind the `database` fault switch (`platform::fault`): every call passes the switch
//! first, so the switch makes the database slow or unreachable for everything the service asks of
//! it, on PostgreSQL and SQLite alike. Unreachable, a call fails with [`StoreError::Fault`] before
//! it reaches the engine, and the service answers as it answers a database that is down (a 503,
//! `src/error.rs`): what the user watches is the service's own handling, such as a cached feed
//! read that needs no database going on as before (DESIGN.md, "Break it").
//!
//! The outbox relay reads the database without this trait (`platform::outbox`), so it is not
//! switched: with the store unreachable no new row can be written for it to find.
//!
//! Since every call to the store passes here, here is also where they are counted:
//! `feed_store_queries_total{call}` counts the calls sent to the database, by the store's method.
//! It is what shows a cached read sending none where a pull read sends one (`sdlab walkthrough
//! feed-service`).

use std::sync::Arc;

use async_trait::async_trait;
use platform::{fault::FaultSwitch, outbox::OutboxEvent};
use time::OffsetDateTime;

use super::{Demotion, FeedStore, InsertedUser, NewUser, StoreError, StoredPost};
use crate::domain::{Account, Post, PostId, Profile, UserId};

pub struct FaultyStore {
    inner: Arc<dyn FeedStore>,
    switch: FaultSwitch,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn FeedStore>, switch: FaultSwitch) -> Self {
        Self { inner, switch }
    }

    /// Passes the switch, then counts `call` as sent to the database.
    async fn send(&self, call: &'static str) -> Result<(), StoreError> {
        self.switch.pass().await?;
        metrics::counter!("feed_store_queries_total", "call" => call).increment(1);
        Ok(())
    }
}

#[async_trait]
impl FeedStore for FaultyStore {
    async fn insert_user(&self, user: &NewUser) -> Result<InsertedUser, StoreError> {
        self.send("insert_user").await?;
        self.inner.insert_user(user).await
    }

    async fn account(&self, token_hash: &str) -> Result<Option<Account>, StoreError> {
        self.send("account").await?;
        self.inner.account(token_hash).await
    }

    async fn user_exists(&self, id: UserId) -> Result<bool, StoreError> {
        self.send("user_exists").await?;
        self.inner.user_exists(id).await
    }

    async fn profile(&self, id: UserId) -> Result<Option<Profile>, StoreError> {
        self.send("profile").await?;
        self.inner.profile(id).await
    }

    async fn follow(
        &self,
        follower: UserId,
        followee: UserId,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError> {
        self.send("follow").await?;
        self.inner.follow(follower, followee, now).await
    }

    async fn unfollow(
        &self,
        follower: UserId,
        followee: UserId,
        demotion: Option<&Demotion>,
    ) -> Result<Option<u64>, StoreError> {
        self.send("unfollow").await?;
        self.inner.unfollow(follower, followee, demotion).await
    }

    async fn insert_post(
        &self,
        post: &Post,
        event: Option<&OutboxEvent>,
    ) -> Result<u64, StoreError> {
        self.send("insert_post").await?;
        self.inner.insert_post(post, event).await
    }

    async fn post(&self, id: PostId) -> Result<Option<StoredPost>, StoreError> {
        self.send("post").await?;
        self.inner.post(id).await
    }

    async fn delete_post(
        &self,
        id: PostId,
        now: OffsetDateTime,
        event: Option<&OutboxEvent>,
    ) -> Result<bool, StoreError> {
        self.send("delete_post").await?;
        self.inner.delete_post(id, now, event).await
    }

    async fn posts(&self, ids: &[PostId]) -> Result<Vec<Post>, StoreError> {
        self.send("posts").await?;
        self.inner.posts(ids).await
    }

    async fn active_followers(
        &self,
        author: UserId,
        active_since: OffsetDateTime,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        self.send("active_followers").await?;
        self.inner
            .active_followers(author, active_since, after, limit)
            .await
    }

    async fn follower_count(&self, user: UserId) -> Result<u64, StoreError> {
        self.send("follower_count").await?;
        self.inner.follower_count(user).await
    }

    async fn celebrity_page(
        &self,
        reader: UserId,
        threshold: u64,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<PostId>, StoreError> {
        self.send("celebrity_page").await?;
        self.inner
            .celebrity_page(reader, threshold, below, limit)
            .await
    }

    async fn followed_celebrities(
        &self,
        reader: UserId,
        threshold: u64,
    ) -> Result<Vec<UserId>, StoreError> {
        self.send("followed_celebrities").await?;
        self.inner.followed_celebrities(reader, threshold).await
    }

    async fn author_post_ids(
        &self,
        author: UserId,
        above: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<PostId>, StoreError> {
        self.send("author_post_ids").await?;
        self.inner.author_post_ids(author, above, limit).await
    }

    async fn last_read(&self, user: UserId) -> Result<Option<OffsetDateTime>, StoreError> {
        self.send("last_read").await?;
        self.inner.last_read(user).await
    }

    async fn mark_read(&self, user: UserId, now: OffsetDateTime) -> Result<(), StoreError> {
        self.send("mark_read").await?;
        self.inner.mark_read(user, now).await
    }

    async fn home_page(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Post>, StoreError> {
        self.send("home_page").await?;
        self.inner.home_page(reader, below, limit).await
    }

    // Forwarded rather than left to the default, which would skip an engine's own version if it
    // had one.
    async fn home_page_ids(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<PostId>, StoreError> {
        self.send("home_page_ids").await?;
        self.inner.home_page_ids(reader, below, limit).await
    }
}
