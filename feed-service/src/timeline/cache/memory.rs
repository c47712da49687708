//! The in-process timelines: a map from reader to an ordered set of post ids, for the embedded
//! backends. The same behaviour as the Redis sorted sets (`conformance`), with the same cap and
//! the same time to live; one process's memory, so only for a single instance.
//!
//! **Expiry, as Redis does it.** Each timeline has a deadline: the time to live after it was
//! built or last read ([`TimelineCache::touch`]), or after the fan-out insert that made it. An
//! expired timeline is absent to every operation, as an expired key is in Redis, and its memory
//! is given back by a sweep over the whole map at most once per [`SWEEP_EVERY`] of the clock
//! (run by whichever operation comes first after that): the map holds at most `max_timelines`,
//! so a sweep is bounded, and between sweeps an inactive reader's timeline takes memory for
//! minutes, not forever. Redis expires keys in the background the same way (a sampled sweep ten
//! times a second), not at the deadline. The clock is injected, so tests move past the time to
//! live without sleeping.
//!
//! **Bounded by a count of timelines**: past it, expired timelines are swept first, then one is
//! evicted, and its reader's next read rebuilds it from the database, as after a Redis eviction.
//! A `std::sync::Mutex`, not tokio's: no lock is held across an `.await`, and each operation is a
//! few set operations.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use platform::{cache::CacheError, clock::Clock};
use time::OffsetDateTime;

use super::{Slice, TimelineCache};
use crate::domain::{PostId, UserId};

/// How often expired timelines are swept out of the map, at most.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Timeline {
    built: bool,
    whole: bool,
    ids: BTreeSet<PostId>,
    expires_at: OffsetDateTime,
}

impl Timeline {
    /// Up to `limit` ids below `below`, newest first, and the timeline's size.
    fn slice(&self, below: Option<PostId>, limit: u32) -> Slice {
        Slice {
            ids: self
                .ids
                .iter()
                .rev()
                .filter(|id| below.is_none_or(|below| **id < below))
                .take(limit as usize)
                .copied()
                .collect(),
            size: self.ids.len(),
            whole: self.whole,
        }
    }
}

#[derive(Debug)]
struct Timelines {
    map: HashMap<UserId, Timeline>,
    next_sweep: OffsetDateTime,
}

pub struct MemoryTimelines {
    cap: usize,
    max_timelines: usize,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    timelines: Mutex<Timelines>,
}

impl std::fmt::Debug for MemoryTimelines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTimelines")
            .field("cap", &self.cap)
            .field("max_timelines", &self.max_timelines)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl MemoryTimelines {
    pub fn new(cap: usize, max_timelines: usize, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        let next_sweep = clock.now() + SWEEP_EVERY;
        Self {
            cap: cap.max(1),
            max_timelines: max_timelines.max(1),
            ttl,
            clock,
            timelines: Mutex::new(Timelines {
                map: HashMap::new(),
                next_sweep,
            }),
        }
    }

    /// How many timelines the map holds, expired ones not yet swept included.
    pub fn held(&self) -> usize {
        self.timelines
            .lock()
            .expect("timelines lock poisoned")
            .map
            .len()
    }

    /// The map, swept first if a sweep is due, and the time now.
    fn lock(&self) -> (std::sync::MutexGuard<'_, Timelines>, OffsetDateTime) {
        let now = self.clock.now();
        let mut timelines = self.timelines.lock().expect("timelines lock poisoned");
        if now >= timelines.next_sweep {
            timelines
                .map
                .retain(|_, timeline| timeline.expires_at > now);
            timelines.next_sweep = now + SWEEP_EVERY;
        }
        (timelines, now)
    }

    /// Runs `change` on `reader`'s timeline, creating it (with a fresh time to live, as a key
    /// made by `ZADD` is given one, and evicting another if full) if it is absent or expired.
    fn with_timeline(&self, reader: UserId, change: impl FnOnce(&mut Timeline, OffsetDateTime)) {
        let (mut timelines, now) = self.lock();
        let map = &mut timelines.map;
        if map
            .get(&reader)
            .is_some_and(|timeline| timeline.expires_at <= now)
        {
            map.remove(&reader);
        }
        if !map.contains_key(&reader) && map.len() >= self.max_timelines {
            map.retain(|_, timeline| timeline.expires_at > now);
            if map.len() >= self.max_timelines {
                let evicted = *map.keys().next().expect("a full map has a key");
                map.remove(&evicted);
            }
        }
        let timeline = map.entry(reader).or_insert_with(|| Timeline {
            built: false,
            whole: false,
            ids: BTreeSet::new(),
            expires_at: now + self.ttl,
        });
        change(timeline, now);
        while timeline.ids.len() > self.cap {
            timeline.ids.pop_first();
        }
        // As the Redis trim does: at the cap, the oldest posts may be gone from here on.
        if timeline.ids.len() >= self.cap {
            timeline.whole = false;
        }
    }

    /// Runs `read` on `reader`'s timeline if it is there, built and not expired.
    fn built<T>(&self, reader: UserId, read: impl FnOnce(&mut Timeline) -> T) -> Option<T> {
        let (mut timelines, now) = self.lock();
        timelines
            .map
            .get_mut(&reader)
            .filter(|timeline| timeline.built && timeline.expires_at > now)
            .map(read)
    }
}

#[async_trait]
impl TimelineCache for MemoryTimelines {
    async fn insert(&self, readers: &[UserId], post: PostId) -> Result<(), CacheError> {
        for reader in readers {
            self.with_timeline(*reader, |timeline, _| {
                timeline.ids.insert(post);
            });
        }
        Ok(())
    }

    async fn remove(&self, readers: &[UserId], post: PostId) -> Result<(), CacheError> {
        let (mut timelines, _) = self.lock();
        for reader in readers {
            if let Some(timeline) = timelines.map.get_mut(reader) {
                timeline.ids.remove(&post);
            }
        }
        Ok(())
    }

    async fn forget(&self, readers: &[UserId]) -> Result<(), CacheError> {
        let (mut timelines, _) = self.lock();
        for reader in readers {
            timelines.map.remove(reader);
        }
        Ok(())
    }

    async fn add(&self, reader: UserId, posts: &[PostId], built: bool) -> Result<(), CacheError> {
        if posts.is_empty() && !built {
            // Nothing to add, but the reader now follows someone whose posts are not all here.
            self.built(reader, |timeline| timeline.whole = false);
            return Ok(());
        }
        self.with_timeline(reader, |timeline, now| {
            timeline.ids.extend(posts.iter().copied());
            if built {
                timeline.built = true;
                timeline.whole = posts.len() < self.cap;
                timeline.expires_at = now + self.ttl;
            } else {
                timeline.whole = false;
            }
        });
        Ok(())
    }

    async fn remove_posts(&self, reader: UserId, posts: &[PostId]) -> Result<(), CacheError> {
        let (mut timelines, _) = self.lock();
        if let Some(timeline) = timelines.map.get_mut(&reader) {
            for post in posts {
                timeline.ids.remove(post);
            }
        }
        Ok(())
    }

    async fn touch(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Option<Slice>, CacheError> {
        let now = self.clock.now();
        Ok(self.built(reader, |timeline| {
            timeline.expires_at = now + self.ttl;
            timeline.slice(below, limit)
        }))
    }

    async fn range(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Option<Slice>, CacheError> {
        Ok(self.built(reader, |timeline| timeline.slice(below, limit)))
    }

    async fn tail(&self, reader: UserId) -> Result<Option<PostId>, CacheError> {
        Ok(self
            .built(reader, |timeline| timeline.ids.first().copied())
            .flatten())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use platform::clock::ManualClock;

    use super::*;

    const TTL: Duration = Duration::from_secs(3_600);

    fn cache(max_timelines: usize) -> (MemoryTimelines, ManualClock) {
        let clock = ManualClock::starting_now();
        let cache = MemoryTimelines::new(3, max_timelines, TTL, Arc::new(clock.clone()));
        (cache, clock)
    }

    fn user(n: u64) -> UserId {
        UserId::new(n).unwrap()
    }

    fn size(slice: Option<Slice>) -> Option<usize> {
        slice.map(|slice| slice.size)
    }

    #[tokio::test]
    async fn the_in_process_timelines_behave_like_every_timelines_cache() {
        super::super::conformance::all(&cache(100).0).await;
    }

    #[tokio::test]
    async fn past_its_bound_a_timeline_is_evicted_and_reads_as_not_built() {
        let (cache, _clock) = cache(1);
        cache.add(user(1), &[], true).await.unwrap();

        cache.add(user(2), &[], true).await.unwrap();

        assert_eq!(cache.range(user(1), None, 10).await.unwrap(), None);
        assert!(cache.range(user(2), None, 10).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_timeline_not_read_within_its_time_to_live_is_gone_and_a_read_renews_it() {
        let (cache, clock) = cache(100);
        cache.add(user(1), &[], true).await.unwrap();
        cache.add(user(2), &[], true).await.unwrap();

        clock.advance(TTL - Duration::from_secs(1));
        assert_eq!(size(cache.touch(user(1), None, 0).await.unwrap()), Some(0));
        clock.advance(Duration::from_secs(2));

        assert_eq!(
            cache.touch(user(2), None, 0).await.unwrap(),
            None,
            "expired"
        );
        assert_eq!(cache.range(user(2), None, 10).await.unwrap(), None);
        assert_eq!(
            size(cache.touch(user(1), None, 0).await.unwrap()),
            Some(0),
            "renewed"
        );
    }

    #[tokio::test]
    async fn an_expired_timeline_is_swept_out_of_memory_without_being_touched() {
        let (cache, clock) = cache(100);
        for reader in 1..=10 {
            cache.add(user(reader), &[], true).await.unwrap();
        }
        assert_eq!(cache.held(), 10);

        clock.advance(TTL + SWEEP_EVERY);
        cache.touch(user(99), None, 0).await.unwrap();

        assert_eq!(cache.held(), 0);
    }

    #[tokio::test]
    async fn a_fan_out_insert_into_an_expired_timeline_starts_an_unbuilt_one() {
        let (cache, clock) = cache(100);
        cache
            .add(user(1), &[PostId::new(5).unwrap()], true)
            .await
            .unwrap();
        clock.advance(TTL + Duration::from_secs(1));

        cache
            .insert(&[user(1)], PostId::new(6).unwrap())
            .await
            .unwrap();

        assert_eq!(cache.range(user(1), None, 10).await.unwrap(), None);
        cache.add(user(1), &[], true).await.unwrap();
        let slice = cache.range(user(1), None, 10).await.unwrap().unwrap();
        assert_eq!(
            slice.ids,
            [PostId::new(6).unwrap()],
            "the expired id is gone"
        );
    }
}
