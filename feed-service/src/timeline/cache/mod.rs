//! The timelines cache: per reader, the ids of the posts in their home timeline, newest first,
//! capped. Redis sorted sets when `REDIS_URL` is set ([`RedisTimelines`]), an in-process map of
//! ordered sets otherwise ([`MemoryTimelines`]); [`connect`] chooses. [`FaultyTimelines`] puts the
//! `redis` fault switch in front of either (`src/app.rs`).
//!
//! **Ids only.** A timeline holds post ids, not posts: a post is in thousands of timelines and
//! its text once, in the post cache (`src/timeline/hydrate.rs`). A deleted or edited post then
//! changes in one place, and 800 ids are 800 small members, not 800 copies of a post.
//!
//! **Scored by the id.** Ids are 53-bit snowflakes, time-ordered and exact as a double
//! (`src/ids.rs`), so the score is the id itself: newest first is descending score, a cursor (a
//! post id) is a score bound, and inserting a post twice changes nothing, since a member is
//! unique in its set. That is what makes fan-out retries safe.
//!
//! **Capped.** After every insert the lowest ids beyond [`TimelineCache`]'s cap are trimmed
//! (Twitter kept 800). A page that reaches past a timeline's tail continues from the database
//! (`src/timeline/cached.rs`), so the cap bounds memory, not what a reader can scroll to.
//!
//! **Expiring.** A timeline lives for the active window (`FEED_ACTIVE_WINDOW`, 30 days) after it
//! was built or last read ([`TimelineCache::touch`], on every read), the Redis key's TTL. That
//! is exactly when its reader stops counting as active and fan-out stops keeping it up to date
//! (`src/fanout.rs`), so nothing useful expires: an inactive reader's next read rebuilds it anyway,
//! and until then its timeline no longer takes memory. A fan-out insert that makes a timeline
//! (into a reader's expired or evicted one) gives it the same time to live, and leaves the time
//! of one that has it alone (`PEXPIRE … NX`): a timeline made only of inserts, never read, goes
//! too. Rejected: expiring by `maxmemory` eviction alone, which frees the least recently used
//! keys only once memory is full, and takes active readers' timelines as readily as idle ones.
//!
//! **Built or not.** A timeline that was rebuilt from the database carries a sentinel member
//! (`built`, score 0, below every post id). A timeline without it, absent or made only of fan-out
//! inserts (Redis evicted it, or it was never read), is not trusted: the next read rebuilds it.
//! The alternative, a separate `built` key, is a second key to keep in step with the first
//! through evictions and expiries; a member of the set goes when the set goes.
//!
//! **Whole or not.** A rebuild that found fewer posts than the cap holds everything there is: a
//! second sentinel (`whole`) says so, and a read that runs past such a timeline's tail needs no
//! database query to know that nothing is below it. It stays true while posts are inserted
//! (they are newer than the tail) and removed (what is left is still everything), and stops
//! being true when the timeline reaches the cap (its oldest posts are trimmed from then on) or
//! takes a backfill (a follow adds the author's posts above the tail only). The same flag marks
//! an author's recent posts complete (`src/timeline/celebrities.rs`).
//!
//! Platform's key/value cache has no sorted sets on purpose (its module docs), so this trait
//! lives here, beside the one domain that needs it.

mod faulty;
mod memory;
mod redis;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use platform::{cache::CacheError, clock::Clock};

pub use self::{faulty::FaultyTimelines, memory::MemoryTimelines, redis::RedisTimelines};
use crate::domain::{PostId, UserId};

/// Some of a timeline: ids below a cursor, and how long the timeline is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// Newest first.
    pub ids: Vec<PostId>,
    /// Posts in the whole timeline.
    pub size: usize,
    /// The timeline holds every post below its newest: nothing is past its tail.
    pub whole: bool,
}

#[async_trait]
pub trait TimelineCache: Send + Sync + 'static {
    /// Adds `post` to each of `readers`' timelines, trimming each to the cap: one fan-out batch,
    /// in one round trip.
    async fn insert(&self, readers: &[UserId], post: PostId) -> Result<(), CacheError>;

    /// Removes `post` from each of `readers`' timelines.
    async fn remove(&self, readers: &[UserId], post: PostId) -> Result<(), CacheError>;

    /// Drops each of `readers`' timelines: none is built until a rebuild. One round trip.
    async fn forget(&self, readers: &[UserId]) -> Result<(), CacheError>;

    /// Adds `posts` to `reader`'s timeline, trimming it to the cap. With `built`, a rebuild from
    /// the database (the newest `cap` posts there are): marks it built, and whole if `posts` are
    /// fewer than the cap, and starts its time to live. Without, a backfill: adds to what is
    /// there, and the timeline is no longer whole.
    async fn add(&self, reader: UserId, posts: &[PostId], built: bool) -> Result<(), CacheError>;

    /// A read of `reader`'s timeline: renews its time to live and answers its first `limit` ids
    /// below `below`, as `range` does, in the same round trip; `None` if it is not built (absent,
    /// expired, evicted, or made only by inserts).
    async fn touch(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Option<Slice>, CacheError>;

    /// Removes `posts` from `reader`'s timeline (an unfollow).
    async fn remove_posts(&self, reader: UserId, posts: &[PostId]) -> Result<(), CacheError>;

    /// Up to `limit` ids below `below` (from the newest if `None`), newest first; `None` if the
    /// timeline is not built.
    async fn range(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Option<Slice>, CacheError>;

    /// [`range`](Self::range) of each of `readers`' timelines, in their order: one round trip.
    async fn range_many(
        &self,
        readers: &[UserId],
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Option<Slice>>, CacheError> {
        let mut slices = Vec::with_capacity(readers.len());
        for reader in readers {
            slices.push(self.range(*reader, below, limit).await?);
        }
        Ok(slices)
    }

    /// The oldest id in a built timeline; `None` if it is empty or not built.
    async fn tail(&self, reader: UserId) -> Result<Option<PostId>, CacheError>;

    /// `"redis"` or `"memory"`, for banners.
    fn backend(&self) -> &'static str;
}

/// How to reach the timelines.
#[derive(Clone)]
pub struct TimelinesConfig {
    /// `REDIS_URL`, if set.
    pub redis_url: Option<String>,
    /// Before every key (`feed-service:`), so systems and tests can share a Redis.
    pub namespace: String,
    /// Post ids per timeline (`FEED_TIMELINE_CAP`).
    pub cap: usize,
    /// Timelines the in-process cache holds before it evicts one (Redis has `maxmemory`).
    pub max_timelines: usize,
    pub redis_timeout: Duration,
    /// How long a timeline lives unread: the active window (`FEED_ACTIVE_WINDOW`).
    pub ttl: Duration,
    /// The in-process cache's clock for expiry (Redis keeps its own).
    pub clock: Arc<dyn Clock>,
}

/// The one place that chooses the timelines backend.
pub async fn connect(config: &TimelinesConfig) -> Result<Arc<dyn TimelineCache>, CacheError> {
    Ok(match &config.redis_url {
        Some(url) => Arc::new(
            RedisTimelines::connect(
                url,
                config.namespace.clone(),
                config.cap,
                config.ttl,
                config.redis_timeout,
            )
            .await?,
        ),
        None => Arc::new(MemoryTimelines::new(
            config.cap,
            config.max_timelines,
            config.ttl,
            config.clock.clone(),
        )),
    })
}

/// Behaviour both backends share, run on each (`memory.rs`; `redis.rs` when `REDIS_URL` is set).
#[cfg(test)]
pub mod conformance {
    use super::*;

    fn user(n: u64) -> UserId {
        UserId::new(n).unwrap()
    }

    fn posts(ids: &[u64]) -> Vec<PostId> {
        ids.iter().map(|id| PostId::new(*id).unwrap()).collect()
    }

    /// `cache` must have a cap of 3.
    pub async fn all(cache: &dyn TimelineCache) {
        a_timeline_is_not_built_until_rebuilt(cache).await;
        inserting_twice_changes_nothing_and_the_cap_trims_the_oldest(cache).await;
        a_range_starts_below_the_cursor(cache).await;
        removing_takes_the_post_out(cache).await;
        touching_reads_a_built_timeline_only(cache).await;
        a_rebuild_below_the_cap_is_whole_until_the_cap_or_a_backfill(cache).await;
        ranges_of_many_timelines_come_in_their_order(cache).await;
        forgetting_drops_the_timelines_until_a_rebuild(cache).await;
    }

    async fn a_timeline_is_not_built_until_rebuilt(cache: &dyn TimelineCache) {
        cache.insert(&[user(1)], posts(&[10])[0]).await.unwrap();
        assert_eq!(cache.range(user(1), None, 10).await.unwrap(), None);

        cache.add(user(1), &[], true).await.unwrap();

        let slice = cache.range(user(1), None, 10).await.unwrap().unwrap();
        assert_eq!(slice.ids, posts(&[10]));
        assert_eq!(cache.tail(user(1)).await.unwrap(), Some(posts(&[10])[0]));
    }

    async fn inserting_twice_changes_nothing_and_the_cap_trims_the_oldest(
        cache: &dyn TimelineCache,
    ) {
        cache.add(user(2), &posts(&[5, 6]), true).await.unwrap();
        for id in posts(&[7, 7, 8, 8]) {
            cache.insert(&[user(2)], id).await.unwrap();
        }

        let slice = cache.range(user(2), None, 10).await.unwrap().unwrap();
        assert_eq!(slice.ids, posts(&[8, 7, 6]));
        assert_eq!(slice.size, 3);
    }

    async fn a_range_starts_below_the_cursor(cache: &dyn TimelineCache) {
        cache.add(user(3), &posts(&[1, 2, 3]), true).await.unwrap();
        let below = posts(&[3])[0];

        let slice = cache.range(user(3), Some(below), 1).await.unwrap().unwrap();

        assert_eq!(slice.ids, posts(&[2]));
    }

    async fn touching_reads_a_built_timeline_only(cache: &dyn TimelineCache) {
        cache.insert(&[user(5)], posts(&[1])[0]).await.unwrap();
        assert_eq!(cache.touch(user(5), None, 10).await.unwrap(), None);
        assert_eq!(cache.touch(user(6), None, 10).await.unwrap(), None);

        cache.add(user(5), &posts(&[2, 3]), true).await.unwrap();

        let below = posts(&[3])[0];
        let slice = cache.touch(user(5), Some(below), 1).await.unwrap();
        assert_eq!(
            slice,
            Some(Slice {
                ids: posts(&[2]),
                size: 3,
                whole: false,
            })
        );
    }

    async fn a_rebuild_below_the_cap_is_whole_until_the_cap_or_a_backfill(
        cache: &dyn TimelineCache,
    ) {
        let whole = async |reader| {
            cache
                .range(user(reader), None, 10)
                .await
                .unwrap()
                .unwrap()
                .whole
        };
        cache.add(user(7), &posts(&[1]), true).await.unwrap();
        assert!(
            whole(7).await,
            "a rebuild with fewer than the cap holds everything"
        );
        cache.insert(&[user(7)], posts(&[2])[0]).await.unwrap();
        cache.remove(&[user(7)], posts(&[1])[0]).await.unwrap();
        assert!(whole(7).await, "inserts and removals keep it whole");
        cache.insert(&[user(7)], posts(&[3])[0]).await.unwrap();
        cache.insert(&[user(7)], posts(&[4])[0]).await.unwrap();
        let slice = cache.range(user(7), None, 10).await.unwrap().unwrap();
        assert_eq!(
            (slice.ids, slice.whole),
            (posts(&[4, 3, 2]), false),
            "at the cap"
        );

        cache.add(user(8), &posts(&[1, 2, 3]), true).await.unwrap();
        assert!(
            !whole(8).await,
            "a rebuild that filled the cap may have left posts out"
        );

        cache.add(user(9), &posts(&[5]), true).await.unwrap();
        cache.add(user(9), &posts(&[6]), false).await.unwrap();
        assert!(!whole(9).await, "a backfill stops at the tail");
        cache.add(user(9), &[], true).await.unwrap();
        let slice = cache.range(user(9), None, 10).await.unwrap().unwrap();
        assert_eq!((slice.ids, slice.size), (posts(&[6, 5]), 2));
    }

    async fn ranges_of_many_timelines_come_in_their_order(cache: &dyn TimelineCache) {
        cache.add(user(10), &posts(&[1, 3]), true).await.unwrap();
        cache.add(user(12), &posts(&[2]), true).await.unwrap();
        let below = Some(posts(&[3])[0]);

        let slices = cache
            .range_many(&[user(12), user(11), user(10)], below, 5)
            .await
            .unwrap();

        let ids: Vec<_> = slices
            .into_iter()
            .map(|slice| slice.map(|s| s.ids))
            .collect();
        assert_eq!(ids, [Some(posts(&[2])), None, Some(posts(&[1]))]);
    }

    async fn forgetting_drops_the_timelines_until_a_rebuild(cache: &dyn TimelineCache) {
        cache.add(user(20), &posts(&[1, 2]), true).await.unwrap();
        cache.add(user(21), &posts(&[3]), true).await.unwrap();
        cache.add(user(22), &posts(&[4]), true).await.unwrap();

        cache.forget(&[user(20), user(21), user(23)]).await.unwrap();

        assert_eq!(cache.range(user(20), None, 10).await.unwrap(), None);
        assert_eq!(cache.touch(user(21), None, 10).await.unwrap(), None);
        assert_eq!(cache.tail(user(21)).await.unwrap(), None);
        let kept = cache.range(user(22), None, 10).await.unwrap().unwrap();
        assert_eq!(kept.ids, posts(&[4]));
        cache.insert(&[user(20)], posts(&[5])[0]).await.unwrap();
        assert_eq!(cache.range(user(20), None, 10).await.unwrap(), None);

        cache.add(user(20), &posts(&[6]), true).await.unwrap();
        let rebuilt = cache.range(user(20), None, 10).await.unwrap().unwrap();
        assert_eq!(rebuilt.ids, posts(&[6, 5]));
    }

    async fn removing_takes_the_post_out(cache: &dyn TimelineCache) {
        cache.add(user(4), &posts(&[1, 2, 3]), true).await.unwrap();
        cache.remove(&[user(4)], posts(&[3])[0]).await.unwrap();
        cache.remove_posts(user(4), &posts(&[1])).await.unwrap();

        let slice = cache.range(user(4), None, 10).await.unwrap().unwrap();
        assert_eq!(slice.ids, posts(&[2]));
    }
}
