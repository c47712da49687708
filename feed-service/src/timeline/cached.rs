//! Fan-out on write (push) and the hybrid: a home timeline is read from the timelines cache
//! (`cache/`), which the fan-out workers (`src/fanout.rs`) keep up to date, and hydrated through
//! the post cache (`hydrate.rs`).
//!
//! A read:
//! 1. **Opens the timeline.** It records the read (to the hour) *before* anything else, so a post
//!    whose fan-out runs from now on counts this reader as active, and renews the timeline's
//!    time to live (the active window, `cache/mod.rs`). The read this process last recorded or
//!    saw for each reader is kept in memory: within the hour it proves the reader active and the
//!    record current, so only a reader's first read of the hour asks the database. A reader whose
//!    timeline is not
//!    built, or whose last read is older than the active window (fan-out skipped them, so their
//!    timeline has gaps), gets it rebuilt: the pull query's newest `cap` ids, added to what is
//!    there. Added, not replacing: an insert a worker made meanwhile stays.
//! 2. **Takes ids below the cursor** and hydrates them, again for as many as were dropped as
//!    deleted, until the page is full or the timeline runs out. The first ids come with the
//!    renewal of step 1, in one round trip (`TimelineCache::touch`), so a page the timeline
//!    holds is two cache round trips: that one, and the posts' `MGET`.
//! 3. **Hybrid: merges the celebrities.** The posts of followed authors with more than the
//!    threshold of followers were never fanned out; their newest below the cursor come from each
//!    celebrity's recent posts, cached (`celebrities.rs`), and are merged. Their ids are fetched
//!    while step 1 runs and their posts hydrated with step 2's first ids, so a hybrid page the
//!    caches hold is three round trips on the critical path, where push's is two.
//! 4. **Past the tail, the database.** If the timeline ran out, the page continues with the pull
//!    query below the last cached id, unless the timeline is whole: rebuilt from fewer posts
//!    than the cap and given no backfill since (`cache/mod.rs`), it holds everything, and a
//!    short timeline (a new reader's) is served from the cache alone. A capped timeline is the
//!    recent part of a feed; scrolling past it is rare and costs a pull read, rather than ending
//!    the feed at 800 posts.
//!
//! Every source answers "newest below this id", so the union of each one's newest `limit` holds
//! the page's `limit`, and merging them by id is the whole of the merge. A cursor is a post id as
//! under pull, and pages come out the same (`tests/api/strategies.rs` checks it).

use std::{collections::HashSet, num::NonZeroUsize, sync::Arc, time::Duration};

use async_trait::async_trait;
use platform::{
    cache::{Cache, MemoryCache},
    clock::Clock,
};
use time::OffsetDateTime;

use super::{
    Strategy, TimelineSettings, Timelines,
    cache::{Slice, TimelineCache},
    celebrities::Celebrities,
    hydrate::PostCache,
};
use crate::{
    domain::{Post, PostId, UserId},
    store::{FeedStore, StoreError},
};

/// A read is recorded at most once per this, so that reading a feed is not a database write
/// every time: the active window is days, an hour's precision is plenty.
const READ_PRECISION: time::Duration = time::Duration::hours(1);

/// Readers whose last read is kept in process, the least recently used evicted first.
const READS_HELD: NonZeroUsize = NonZeroUsize::new(100_000).expect("not zero");

pub struct Cached {
    strategy: Strategy,
    store: Arc<dyn FeedStore>,
    timelines: Arc<dyn TimelineCache>,
    posts: Arc<PostCache>,
    /// Under hybrid, where the celebrities' posts come from.
    celebrities: Option<Arc<Celebrities>>,
    clock: Arc<dyn Clock>,
    settings: TimelineSettings,
    /// Per reader, the last read recorded in the database as far as this process knows: a lower
    /// bound on it, since another instance may have recorded a later one, and reads only move it
    /// forward. Its validity is judged by `clock`; the cache's own TTL only frees the memory.
    reads: MemoryCache,
}

impl Cached {
    pub fn new(
        strategy: Strategy,
        store: Arc<dyn FeedStore>,
        timelines: Arc<dyn TimelineCache>,
        posts: Arc<PostCache>,
        celebrities: Option<Arc<Celebrities>>,
        clock: Arc<dyn Clock>,
        settings: TimelineSettings,
    ) -> Self {
        Self {
            strategy,
            store,
            timelines,
            posts,
            celebrities: celebrities.filter(|_| strategy == Strategy::Hybrid),
            clock,
            settings,
            reads: MemoryCache::new(READS_HELD),
        }
    }

    fn cap(&self) -> u32 {
        u32::try_from(self.settings.cap).unwrap_or(u32::MAX)
    }

    /// Step 1: records the read, and rebuilds the timeline if it is missing or stale. A timeline
    /// that is there answers the first `limit` ids below `below` in the same round trip as its
    /// renewal; `None` when it was rebuilt.
    async fn open(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Option<Slice>, StoreError> {
        let now = self.clock.now();
        let last_read = match self.held_read(reader, now).await {
            // Recorded within the hour: nothing to write, and the reader was active.
            Some(at) => Some(at),
            None => {
                let last_read = self.store.last_read(reader).await?;
                let recorded = match last_read {
                    Some(at) if now - at < READ_PRECISION => at,
                    _ => {
                        self.store.mark_read(reader, now).await?;
                        now
                    }
                };
                self.hold_read(reader, recorded).await;
                last_read
            }
        };
        let active = last_read.is_some_and(|at| at >= self.settings.active_since(now));
        // Touching renews the timeline's time to live: the active window from this read.
        let built = match active {
            true => self.timelines.touch(reader, below, limit).await?,
            false => None,
        };
        let (size, first) = match built {
            Some(slice) => {
                metrics::counter!("feed_timeline_reads_total", "result" => "hit").increment(1);
                (slice.size, Some(slice))
            }
            None => {
                metrics::counter!("feed_timeline_reads_total", "result" => "miss").increment(1);
                let ids = self.store.home_page_ids(reader, None, self.cap()).await?;
                self.timelines.add(reader, &ids, true).await?;
                (ids.len(), None)
            }
        };
        metrics::histogram!("feed_timeline_size").record(size as f64);
        Ok(first)
    }

    /// The read held for `reader`, if it was recorded less than [`READ_PRECISION`] before `now`.
    async fn held_read(&self, reader: UserId, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let held = self.reads.get(&reader.to_string()).await.ok()??;
        let millis = std::str::from_utf8(&held).ok()?.parse().ok()?;
        let at = platform::db::from_unix_millis(millis);
        (now - at < READ_PRECISION).then_some(at)
    }

    async fn hold_read(&self, reader: UserId, at: OffsetDateTime) {
        let millis = platform::db::unix_millis(at).to_string();
        let ttl = Duration::try_from(READ_PRECISION).expect("an hour is positive");
        // The in-process cache cannot fail.
        let _ = self
            .reads
            .set(&reader.to_string(), millis.as_bytes(), ttl)
            .await;
    }

    fn is_celebrity(&self, followers: u64) -> bool {
        !self.settings.fans_out_to(self.strategy, followers)
    }
}

#[async_trait]
impl Timelines for Cached {
    fn strategy(&self) -> Strategy {
        self.strategy
    }

    async fn page(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Post>, StoreError> {
        // Step 3's ids are fetched beside step 1, their two round trips alongside its one, and
        // their posts hydrated with the timeline's first ids: one `MGET` for both.
        let celebrities = async {
            match &self.celebrities {
                Some(celebrities) => celebrities.page(reader, below, limit).await,
                None => Ok(Vec::new()),
            }
        };
        let (mut first, mut celebrity_ids) =
            tokio::try_join!(self.open(reader, below, limit), celebrities)?;

        // Step 2. Only the timeline's posts count towards a full page here: each source must
        // give its own newest `limit`, or a timeline post that belongs on the page could be left
        // for a celebrity's older one.
        let mut posts = Vec::with_capacity(limit as usize + celebrity_ids.len());
        let mut from = below;
        let mut from_timeline = 0;
        let past_tail = loop {
            let want = limit - from_timeline;
            let slice = match first.take() {
                Some(slice) => Some(slice),
                None => self.timelines.range(reader, from, want).await?,
            };
            let (ids, whole) = slice.map_or((Vec::new(), false), |slice| (slice.ids, slice.whole));
            let ran_out = ids.len() < want as usize;
            from = ids.last().copied().or(from);
            let timeline: HashSet<PostId> = ids.iter().copied().collect();
            let mut celebrity: Vec<PostId> = celebrity_ids
                .drain(..)
                .filter(|id| !timeline.contains(id))
                .collect();
            // A full slice bounds the page: a celebrity's post older than the `want`-th newest
            // id on offer cannot make it, unless an id above it turns out to be gone (a post
            // deleted since it was cached). Those are hydrated only then, so a read hydrates
            // about a page rather than every followed celebrity's page.
            let spare = match ran_out {
                true => Vec::new(),
                false => older_than_page(&ids, &mut celebrity, want as usize),
            };
            let mut wanted = ids;
            wanted.extend(celebrity);
            let mut hydrated = self.posts.hydrate(&wanted).await?;
            if let Some(&oldest_spare) = spare.first()
                && hydrated
                    .iter()
                    .filter(|post| post.id > oldest_spare)
                    .count()
                    < want as usize
            {
                hydrated.extend(self.posts.hydrate(&spare).await?);
            }
            for post in hydrated {
                from_timeline += u32::from(timeline.contains(&post.id));
                posts.push(post);
            }
            if ran_out || from_timeline >= limit {
                break ran_out && !whole;
            }
        };

        // Step 4.
        if past_tail {
            posts.extend(self.store.home_page(reader, from, limit).await?);
        }

        posts.sort_by_key(|post| std::cmp::Reverse(post.id));
        posts.dedup_by_key(|post| post.id);
        posts.truncate(limit as usize);
        Ok(posts)
    }

    fn fans_out(&self) -> bool {
        true
    }

    fn celebrity_threshold(&self) -> Option<u64> {
        self.celebrities
            .is_some()
            .then_some(self.settings.celebrity_threshold)
    }

    async fn followed(
        &self,
        reader: UserId,
        author: UserId,
        followers: Option<u64>,
    ) -> Result<(), StoreError> {
        if let Some(celebrities) = &self.celebrities {
            celebrities.follows_changed(reader, followers, true).await?;
        }
        let followers = match followers {
            Some(followers) => followers,
            None => self.store.follower_count(author).await?,
        };
        if self.is_celebrity(followers) {
            return Ok(());
        }
        // Never below the tail: a page already served from the cache, or past it from the
        // database, stays as it was; the author's older posts come from the database when the
        // reader scrolls there. A timeline not built gets them when it is.
        if self.timelines.range(reader, None, 0).await?.is_none() {
            return Ok(());
        }
        let tail = self.timelines.tail(reader).await?;
        let ids = self.store.author_post_ids(author, tail, self.cap()).await?;
        self.timelines.add(reader, &ids, false).await?;
        Ok(())
    }

    async fn unfollowed(
        &self,
        reader: UserId,
        author: UserId,
        followers: Option<u64>,
    ) -> Result<(), StoreError> {
        if let Some(celebrities) = &self.celebrities {
            celebrities
                .follows_changed(reader, followers, false)
                .await?;
        }
        // Only the author's posts that can be in a capped timeline: those above its tail (and
        // the tail itself).
        let tail = self.timelines.tail(reader).await?;
        let above = tail.and_then(|tail| PostId::new(tail.get() - 1));
        let ids = self
            .store
            .author_post_ids(author, above, self.cap())
            .await?;
        self.timelines.remove_posts(reader, &ids).await?;
        Ok(())
    }

    async fn posted(&self, post: &Post, followers: u64) -> Result<(), StoreError> {
        if let Some(celebrities) = &self.celebrities
            && celebrities.is_celebrity(followers)
        {
            celebrities.posted(post.author, post.id).await?;
        }
        Ok(())
    }

    async fn deleted(&self, post: PostId, author: UserId) -> Result<(), StoreError> {
        self.posts.forget(post).await?;
        if let Some(celebrities) = &self.celebrities {
            celebrities.deleted(author, post).await?;
        }
        Ok(())
    }
}

/// Takes out of `celebrity` the ids older than the `want`-th newest of it and `timeline` together,
/// which a page of `want` cannot reach while the ids above them are live; returns them newest
/// first.
fn older_than_page(timeline: &[PostId], celebrity: &mut Vec<PostId>, want: usize) -> Vec<PostId> {
    let mut offered: Vec<PostId> = timeline.iter().chain(celebrity.iter()).copied().collect();
    if want == 0 || offered.len() <= want {
        return Vec::new();
    }
    let (_, &mut cutoff, _) = offered.select_nth_unstable_by(want - 1, |a, b| b.cmp(a));
    let mut spare = Vec::new();
    celebrity.retain(|&id| {
        let reachable = id >= cutoff;
        if !reachable {
            spare.push(id);
        }
        reachable
    });
    spare.sort_unstable_by(|a, b| b.cmp(a));
    spare
}
