//! The use cases, as [`Feed`]: sign up, follow and unfollow, post, read and delete a post, read a
//! home feed; and who may do each.
//!
//! **Identity.** Signing up returns a token (a `platform::auth` API key, shown once, stored as
//! its SHA-256). Every other call carries it, and the user a call acts for is the token's user
//! ([`Feed::authenticate`]), never an id taken from the path or the body: those only name what
//! the call is about. So a path id that is not the caller's, where the call would act for
//! someone (follow for them) or read what is theirs alone (their home feed), is refused with 403,
//! and a body naming another author is refused the same way. An unknown id is 404 first: profiles
//! are public, so telling "no such user" from "not yours" reveals nothing a `GET` would not.
//!
//! **Accounts are held in process.** A token's account (id and handle) never changes, so once
//! looked up it is kept in memory ([`ACCOUNTS_HELD`] of them, for [`ACCOUNT_TTL`]) and every
//! later request with that token costs no database round trip: a cached feed read then touches
//! only the caches (DESIGN.md §3, §11). In process rather than in Redis, because there is nothing
//! to invalidate across instances (no rotation, no deletion); if tokens could be revoked, the TTL
//! would be how long a revoked one keeps working, and revocation would have to delete here too.
//! Unknown tokens are not remembered: each one is a lookup.
//!
//! **Ids.** Every user and post id comes from the instance's [`Snowflake`]; if the database
//! already holds an id (`StoreError::IdTaken`: two instances given one `FEED_INSTANCE_ID`, or a
//! restart inside a burst's borrowed milliseconds), the insert is tried again with the next id, a
//! few times, and each collision is counted in `feed_id_collisions_total`.

use std::{future::Future, num::NonZeroUsize, sync::Arc, time::Duration};

use platform::{
    auth::ApiKey,
    cache::{Cache, MemoryCache},
    clock::Clock,
};
use time::OffsetDateTime;

use crate::{
    domain::{Account, Cursor, Handle, Invalid, Limit, Post, PostId, PostText, Profile, UserId},
    error::FeedError,
    fanout::{PostEvent, PostEvents},
    ids::Snowflake,
    store::{Demotion, FeedStore, InsertedUser, NewUser, StoreError, StoredPost},
    timeline::Timelines,
};

/// How many ids an insert tries before giving up. A collision needs a misconfiguration to happen
/// at all; five in a row would mean instances in lockstep, better reported than hidden.
const ID_ATTEMPTS: u32 = 5;

/// Accounts kept in process, the least recently used evicted first: a few megabytes.
const ACCOUNTS_HELD: NonZeroUsize = NonZeroUsize::new(100_000).expect("not zero");
/// How long a looked-up account is kept.
const ACCOUNT_TTL: Duration = Duration::from_secs(600);

pub struct Feed {
    store: Arc<dyn FeedStore>,
    timelines: Arc<dyn Timelines>,
    ids: Arc<Snowflake>,
    clock: Arc<dyn Clock>,
    /// Where posts and deletes are announced, if the strategy fans out.
    events: Option<PostEvents>,
    /// Token hash to account, for the tokens seen lately.
    accounts: MemoryCache,
}

/// A new user, and the token that acts as them: shown this once.
#[derive(Debug)]
pub struct SignedUp {
    pub account: Account,
    pub token: ApiKey,
}

/// A page of a home feed, and where the next one starts (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub posts: Vec<Post>,
    pub next: Option<Cursor>,
}

impl Feed {
    pub fn new(
        store: Arc<dyn FeedStore>,
        timelines: Arc<dyn Timelines>,
        ids: Arc<Snowflake>,
        clock: Arc<dyn Clock>,
        events: PostEvents,
    ) -> Self {
        let events = timelines.fans_out().then_some(events);
        Self {
            store,
            timelines,
            ids,
            clock,
            events,
            accounts: MemoryCache::new(ACCOUNTS_HELD),
        }
    }

    pub fn timelines(&self) -> &Arc<dyn Timelines> {
        &self.timelines
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn sign_up(&self, handle: &str) -> Result<SignedUp, FeedError> {
        let handle = Handle::parse(handle)?;
        let created = retry_taken_ids(|| {
            let token = ApiKey::generate();
            let user = NewUser {
                id: self.ids.user_id(),
                handle: handle.clone(),
                token_hash: token.hash(),
                created_at: self.now(),
            };
            let store = self.store.clone();
            async move {
                let inserted = store.insert_user(&user).await?;
                Ok((inserted, user.id, token))
            }
        })
        .await?;
        match created {
            (InsertedUser::Created, id, token) => Ok(SignedUp {
                account: Account { id, handle },
                token,
            }),
            (InsertedUser::HandleTaken, ..) => Err(FeedError::HandleTaken),
        }
    }

    /// The user a token acts for.
    pub async fn authenticate(&self, token: &ApiKey) -> Result<Account, FeedError> {
        let hash = token.hash();
        if let Some(account) = self.held_account(&hash).await {
            return Ok(account);
        }
        let account = self
            .store
            .account(&hash)
            .await?
            .ok_or(FeedError::UnknownToken)?;
        let held = format!("{}:{}", account.id, account.handle.as_str());
        // The in-process cache cannot fail.
        let _ = self.accounts.set(&hash, held.as_bytes(), ACCOUNT_TTL).await;
        Ok(account)
    }

    /// The account held for a token hash, written by `authenticate` as `<id>:<handle>`.
    async fn held_account(&self, hash: &str) -> Option<Account> {
        let held = self.accounts.get(hash).await.ok()??;
        let (id, handle) = std::str::from_utf8(&held).ok()?.split_once(':')?;
        Some(Account {
            id: UserId::parse(id)?,
            handle: Handle::parse(handle).ok()?,
        })
    }

    pub async fn profile(&self, id: UserId) -> Result<Profile, FeedError> {
        self.store.profile(id).await?.ok_or(FeedError::UserNotFound)
    }

    /// Makes `id` (who must be the caller) follow `target`. Idempotent.
    #[tracing::instrument(skip(self, caller), fields(caller = %caller.id), err(level = "debug"))]
    pub async fn follow(
        &self,
        caller: &Account,
        id: UserId,
        target: UserId,
    ) -> Result<(), FeedError> {
        self.followable(caller, id, target).await?;
        let followers = self.store.follow(caller.id, target, self.now()).await?;
        self.timelines
            .followed(caller.id, target, followers)
            .await?;
        Ok(())
    }

    /// Makes `id` (who must be the caller) stop following `target`. Idempotent.
    #[tracing::instrument(skip(self, caller), fields(caller = %caller.id), err(level = "debug"))]
    pub async fn unfollow(
        &self,
        caller: &Account,
        id: UserId,
        target: UserId,
    ) -> Result<(), FeedError> {
        self.followable(caller, id, target).await?;
        // Under hybrid, the unfollow that takes a celebrity back down to the threshold announces
        // it in its own transaction (`src/fanout.rs`, `PostEvent::Demoted`).
        let demotion = match (&self.events, self.timelines.celebrity_threshold()) {
            (Some(events), Some(threshold)) => Some(Demotion {
                threshold,
                event: PostEvent::demoted(target).outbox(&events.topic, self.now()),
            }),
            _ => None,
        };
        let followers = self
            .store
            .unfollow(caller.id, target, demotion.as_ref())
            .await?;
        if demotion.is_some_and(|demotion| demotion.crossed(followers)) {
            self.announced();
        }
        self.timelines
            .unfollowed(caller.id, target, followers)
            .await?;
        Ok(())
    }

    /// Publishes a post by the caller. `author`, if given, must name the caller.
    #[tracing::instrument(skip(self, caller, text), fields(caller = %caller.id), err(level = "debug"))]
    pub async fn publish(
        &self,
        caller: &Account,
        text: String,
        author: Option<&str>,
    ) -> Result<Post, FeedError> {
        if let Some(author) = author {
            let named = UserId::parse(author)
                .ok_or_else(|| Invalid::new("author", "must be a user id: a string of digits"))?;
            if named != caller.id {
                return Err(FeedError::NotYours(
                    "You can only post as yourself: leave `author` out, or name yourself.",
                ));
            }
        }
        let text = PostText::parse(text)?;
        let (post, followers) = retry_taken_ids(|| {
            let post = Post {
                id: self.ids.post_id(),
                author: caller.id,
                author_handle: caller.handle.clone(),
                text: text.as_str().to_owned(),
                created_at: self.now(),
            };
            let event = self.events.as_ref().map(|events| {
                PostEvent::created(post.id, post.author, post.created_at)
                    .outbox(&events.topic, post.created_at)
            });
            let store = self.store.clone();
            async move {
                let followers = store.insert_post(&post, event.as_ref()).await?;
                Ok((post, followers))
            }
        })
        .await?;
        self.announced();
        if let Err(err) = self.timelines.posted(&post, followers).await {
            // The post is stored and its event will reach the fan-out worker, which does the
            // same: failing the request would only make the client post it twice.
            tracing::warn!(post = %post.id, error = %platform::problem::error_chain(&err), "placing a celebrity's post in their recent posts failed; the fan-out worker will");
        }
        metrics::counter!("feed_posts_published_total").increment(1);
        Ok(post)
    }

    /// A live post; a deleted one is as gone as one that never was.
    pub async fn post(&self, id: PostId) -> Result<Post, FeedError> {
        match self.store.post(id).await? {
            Some(StoredPost::Live(post)) => Ok(post),
            Some(StoredPost::Deleted { .. }) | None => Err(FeedError::PostNotFound),
        }
    }

    /// Deletes the caller's post, from every feed at once: pull reads the posts table, and the
    /// cached strategies drop it when hydrating (the post cache holds a tombstone at once; the
    /// workers take the id out of every timeline after).
    /// Idempotent for its author: deleting it again succeeds and changes nothing, so a client
    /// that lost the first answer can retry. For anyone else a deleted post is not there (404).
    #[tracing::instrument(skip(self, caller), fields(caller = %caller.id), err(level = "debug"))]
    pub async fn delete(&self, caller: &Account, id: PostId) -> Result<(), FeedError> {
        match self.store.post(id).await? {
            None => Err(FeedError::PostNotFound),
            Some(StoredPost::Deleted { author }) if author == caller.id => Ok(()),
            Some(StoredPost::Deleted { .. }) => Err(FeedError::PostNotFound),
            Some(StoredPost::Live(post)) if post.author != caller.id => {
                Err(FeedError::NotYours("Only its author can delete a post."))
            }
            Some(StoredPost::Live(_)) => {
                let now = self.now();
                let event = self
                    .events
                    .as_ref()
                    .map(|events| PostEvent::deleted(id, caller.id).outbox(&events.topic, now));
                // False if the author deleted it meanwhile: the same outcome, and no event.
                if self.store.delete_post(id, now, event.as_ref()).await? {
                    self.announced();
                }
                self.timelines.deleted(id, caller.id).await?;
                Ok(())
            }
        }
    }

    /// A page of `id`'s home feed, which only `id` may read: their own posts and those of
    /// everyone they follow, newest first, starting below `cursor`.
    #[tracing::instrument(skip(self, caller), fields(caller = %caller.id), err(level = "debug"))]
    pub async fn home(
        &self,
        caller: &Account,
        id: UserId,
        cursor: Option<Cursor>,
        limit: Limit,
    ) -> Result<Page, FeedError> {
        self.acting_for(caller, id, "You can only read your own home feed.")
            .await?;
        let limit = limit.get();
        // One more than asked, to know whether there is a next page without a second query.
        let mut posts = self
            .timelines
            .page(caller.id, cursor.map(Cursor::below), limit + 1)
            .await?;
        let more = posts.len() > limit as usize;
        posts.truncate(limit as usize);
        let next = posts
            .last()
            .filter(|_| more)
            .map(|last| Cursor::after(last.id));
        Ok(Page { posts, next })
    }

    /// An event was committed: counts it as fan-out work waiting, and wakes the outbox relay so
    /// that it goes out now.
    fn announced(&self) {
        if let Some(events) = &self.events {
            events.stats.announced();
            events.wake.notify_one();
        }
    }

    /// Passes if `id` is the caller; otherwise 404 if there is no such user, 403 if there is.
    async fn acting_for(
        &self,
        caller: &Account,
        id: UserId,
        refusal: &'static str,
    ) -> Result<(), FeedError> {
        if id == caller.id {
            Ok(())
        } else if self.store.user_exists(id).await? {
            Err(FeedError::NotYours(refusal))
        } else {
            Err(FeedError::UserNotFound)
        }
    }

    async fn followable(
        &self,
        caller: &Account,
        id: UserId,
        target: UserId,
    ) -> Result<(), FeedError> {
        self.acting_for(caller, id, "You can only change whom you follow.")
            .await?;
        if target == caller.id {
            return Err(FeedError::FollowSelf);
        }
        if !self.store.user_exists(target).await? {
            return Err(FeedError::UserNotFound);
        }
        Ok(())
    }

    /// The time to store: whole milliseconds, which both engines keep exactly, so that what a
    /// `POST` answers is what a later `GET` reads.
    fn now(&self) -> OffsetDateTime {
        let now = self.clock.now();
        now.replace_millisecond(now.millisecond())
            .expect("the current millisecond is valid")
    }
}

/// Runs `insert` (which takes a new id each time) until its id is not taken, at most
/// [`ID_ATTEMPTS`] times.
async fn retry_taken_ids<T, F, Fut>(mut insert: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 1;
    loop {
        match insert().await {
            Err(StoreError::IdTaken) if attempt < ID_ATTEMPTS => {
                metrics::counter!("feed_id_collisions_total").increment(1);
                tracing::warn!(
                    attempt,
                    "a new id was taken already: is FEED_INSTANCE_ID shared by two instances?"
                );
                attempt += 1;
            }
            result => return result,
        }
    }
}
