//! The hybrid's read-time half, served from caches: the newest posts of the celebrities a reader
//! follows, without a database query on the read.
//!
//! A celebrity's post is fanned out to no one (`src/fanout.rs`), so every read of every follower
//! must find it. Asking the database for it on each read (the pull query restricted to
//! celebrities, [`FeedStore::celebrity_page`]) is correct and simple, and it was the cost that
//! kept hybrid reads on PostgreSQL from the latency target (DESIGN.md §11). Twitter merges each
//! celebrity's own user timeline, a cache, at read time; so does this, with two caches:
//!
//! - **Each celebrity's recent posts**: a timeline of the author's own posts, capped and scored
//!   by id like a home timeline, in the same kind of cache ([`TimelineCache`], under its own
//!   namespace). It is added to by the post request as soon as the post commits, so the post is
//!   in followers' feeds at once, and again by the fan-out worker that handles the post's event
//!   (the worker's add is what a failed add in the request cannot lose; adding twice changes
//!   nothing). A delete removes the id both ways too. A missing or evicted one is rebuilt from
//!   the database on the next read that needs it, *added* to whatever the post requests put there
//!   meanwhile, so a post committed during the rebuild survives it; and a rebuild that found
//!   fewer posts than the cap is whole (`cache/mod.rs`), so a read past its tail knows there is
//!   nothing below. A read that runs past the tail of one that is not whole (someone scrolling
//!   past a celebrity's 800th post) asks the database ([`FeedStore::celebrity_page`]).
//! - **Per reader, the celebrities they follow** (and themselves, if they are one), in the key/
//!   value cache with the post cache. It changes in two ways, and each bumps a stamp it is
//!   checked against: the reader following or unfollowing someone bumps the reader's own stamp;
//!   an author crossing the threshold, in either direction, bumps one global stamp, the epoch
//!   (seen by the one follow or unfollow whose statement crossed it: `FeedStore::follow` answers
//!   the new count from the same statement). A read takes both stamps and the list in one `MGET`;
//!   a list built under other stamps is rebuilt from the database. The stamps are read *before*
//!   the database is, and bumped *after* the change commits, so a list built from a database
//!   that missed the change always carries a stamp the change has since replaced. A missing
//!   stamp (never set, expired, evicted) is set afresh (`add`, so concurrent readers agree),
//!   which only ever invalidates lists, never revives one.
//!
//! Stamps are random, not counters: a counter that was evicted and started again could repeat a
//! value some old list was built under. What is left to time: a crossing whose epoch bump failed
//! (the cache was down just then) is seen when readers' lists expire, after [`LIST_TTL`].

use std::{sync::Arc, time::Duration};

use platform::cache::{Cache, CacheError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Strategy, TimelineSettings,
    cache::{Slice, TimelineCache},
};
use crate::{
    domain::{PostId, UserId},
    store::{FeedStore, StoreError},
};

/// How long a reader's list of celebrities, and their stamp, are kept unused.
pub const LIST_TTL: Duration = Duration::from_secs(600);

/// How long the epoch lives; when it goes, every list is rebuilt once.
const EPOCH_TTL: Duration = Duration::from_secs(24 * 3_600);

const EPOCH_KEY: &str = "celebrities:epoch";

/// What the key/value cache holds under `celebrities:of:<reader>`.
#[derive(Debug, Serialize, Deserialize)]
struct Followed {
    epoch: String,
    stamp: String,
    authors: Vec<u64>,
}

pub struct Celebrities {
    store: Arc<dyn FeedStore>,
    /// Each celebrity's newest post ids.
    authors: Arc<dyn TimelineCache>,
    /// The readers' lists and the stamps.
    lists: Arc<dyn Cache>,
    settings: TimelineSettings,
}

impl Celebrities {
    pub fn new(
        store: Arc<dyn FeedStore>,
        authors: Arc<dyn TimelineCache>,
        lists: Arc<dyn Cache>,
        settings: TimelineSettings,
    ) -> Self {
        Self {
            store,
            authors,
            lists,
            settings,
        }
    }

    /// Whether an author with `followers` is a celebrity: not fanned out, merged on read.
    pub fn is_celebrity(&self, followers: u64) -> bool {
        !self.settings.fans_out_to(Strategy::Hybrid, followers)
    }

    fn cap(&self) -> u32 {
        u32::try_from(self.settings.cap).unwrap_or(u32::MAX)
    }

    /// Up to `limit` ids below `below` of the celebrities `reader` follows (and the reader, if
    /// one), newest first. Two cache round trips: the list with its stamps, then the authors'
    /// slices in one pipeline (skipped if the reader follows no celebrity); the database only for
    /// what the caches do not hold (a list or an author's recent posts to rebuild, or a read
    /// past the recent posts kept).
    pub async fn page(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<PostId>, StoreError> {
        let authors = self.followed(reader).await?;
        if authors.is_empty() {
            return Ok(Vec::new());
        }
        let slices = self.authors.range_many(&authors, below, limit).await?;
        let mut ids = Vec::new();
        for (author, slice) in authors.iter().zip(slices) {
            let slice = match slice {
                Some(slice) => slice,
                None => self.rebuild(*author, below, limit).await?,
            };
            if slice.ids.len() < limit as usize && !slice.whole {
                // Past what the cache keeps of this author: the database, for all of them.
                metrics::counter!("feed_celebrity_reads_total", "source" => "database")
                    .increment(1);
                return self
                    .store
                    .celebrity_page(reader, self.settings.celebrity_threshold, below, limit)
                    .await;
            }
            ids.extend(slice.ids);
        }
        metrics::counter!("feed_celebrity_reads_total", "source" => "cache").increment(1);
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.truncate(limit as usize);
        Ok(ids)
    }

    /// `post` by the celebrity `author` committed: into their recent posts.
    pub async fn posted(&self, author: UserId, post: PostId) -> Result<(), CacheError> {
        self.authors.insert(&[author], post).await
    }

    /// `post` by `author` was deleted: out of their recent posts.
    pub async fn deleted(&self, author: UserId, post: PostId) -> Result<(), CacheError> {
        self.authors.remove(&[author], post).await
    }

    /// `reader` followed or unfollowed `author`, who has `followers` after it if it changed
    /// anything: the reader's list is stale, and every list is if `author` crossed the
    /// threshold. Called after the change commits, and again by a retry of the request, which
    /// is why the reader's stamp is bumped whether or not anything changed.
    pub async fn follows_changed(
        &self,
        reader: UserId,
        followers_after: Option<u64>,
        followed: bool,
    ) -> Result<(), CacheError> {
        let crossed = followers_after.is_some_and(|after| {
            let before = if followed {
                after.saturating_sub(1)
            } else {
                after + 1
            };
            self.is_celebrity(before) != self.is_celebrity(after)
        });
        if crossed {
            metrics::counter!("feed_celebrity_crossings_total").increment(1);
            self.lists.set(EPOCH_KEY, &fresh(), EPOCH_TTL).await?;
        }
        self.lists.set(&stamp_key(reader), &fresh(), LIST_TTL).await
    }

    /// The celebrities `reader` follows: the cached list if it was built under the current
    /// stamps, otherwise from the database.
    async fn followed(&self, reader: UserId) -> Result<Vec<UserId>, StoreError> {
        let (stamp_key, list_key) = (stamp_key(reader), list_key(reader));
        let mut values = self
            .lists
            .get_many(&[EPOCH_KEY, &stamp_key, &list_key])
            .await?
            .into_iter();
        let (epoch, stamp, list) = (values.next(), values.next(), values.next());
        let epoch = match epoch.flatten() {
            Some(epoch) => epoch,
            None => self.stamp(EPOCH_KEY, EPOCH_TTL).await?,
        };
        let stamp = match stamp.flatten() {
            Some(stamp) => stamp,
            None => self.stamp(&stamp_key, LIST_TTL).await?,
        };
        let (epoch, stamp) = (lossy(epoch), lossy(stamp));
        let held = list
            .flatten()
            .and_then(|list| serde_json::from_slice::<Followed>(&list).ok());
        if let Some(held) = held
            && held.epoch == epoch
            && held.stamp == stamp
        {
            return Ok(held.authors.into_iter().filter_map(UserId::new).collect());
        }
        let authors = self
            .store
            .followed_celebrities(reader, self.settings.celebrity_threshold)
            .await?;
        let list = Followed {
            epoch,
            stamp,
            authors: authors.iter().map(|author| author.get()).collect(),
        };
        let list = serde_json::to_vec(&list).expect("a list serialises");
        self.lists.set(&list_key, &list, LIST_TTL).await?;
        Ok(authors)
    }

    /// The stamp under `key`, set afresh if there is none: `add` stores only into an empty key,
    /// so readers racing to set it all take the one that landed.
    async fn stamp(&self, key: &str, ttl: Duration) -> Result<Vec<u8>, CacheError> {
        let fresh = fresh();
        if self.lists.add(key, &fresh, ttl).await? {
            return Ok(fresh);
        }
        // Gone again already (evicted): a stamp nobody holds, so the list built under it is
        // rebuilt next time, which is safe.
        Ok(self.lists.get(key).await?.unwrap_or(fresh))
    }

    /// Rebuilds `author`'s recent posts from the database and answers the slice a read wanted.
    async fn rebuild(
        &self,
        author: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Slice, StoreError> {
        let ids = self.store.author_post_ids(author, None, self.cap()).await?;
        self.authors.add(author, &ids, true).await?;
        Ok(Slice {
            size: ids.len(),
            whole: ids.len() < self.settings.cap,
            ids: ids
                .into_iter()
                .filter(|id| below.is_none_or(|below| *id < below))
                .take(limit as usize)
                .collect(),
        })
    }
}

fn fresh() -> Vec<u8> {
    Uuid::new_v4().simple().to_string().into_bytes()
}

fn lossy(stamp: Vec<u8>) -> String {
    String::from_utf8_lossy(&stamp).into_owned()
}

fn stamp_key(reader: UserId) -> String {
    format!("celebrities:stamp:{reader}")
}

fn list_key(reader: UserId) -> String {
    format!("celebrities:of:{reader}")
}
