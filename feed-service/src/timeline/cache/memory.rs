//! The in-process timelines: a map from reader to an ordered set of post ids, for the embedded
//! backends. The same behaviour as the Redis sorted sets (`conformance`), with the same cap; one
//! process's memory, so only for a single instance.
//!
//! Bounded by a count of timelines: past it, one timeline is evicted, and its reader's next read
//! rebuilds it from the database, as after a Redis eviction. A `std::sync::Mutex`, not tokio's:
//! no lock is held across an `.await`, and each operation is a few set operations.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
};

use async_trait::async_trait;
use platform::cache::CacheError;

use super::{Slice, TimelineCache};
use crate::domain::{PostId, UserId};

#[derive(Debug, Default)]
struct Timeline {
    built: bool,
    ids: BTreeSet<PostId>,
}

#[derive(Debug)]
pub struct MemoryTimelines {
    cap: usize,
    max_timelines: usize,
    timelines: Mutex<HashMap<UserId, Timeline>>,
}

impl MemoryTimelines {
    pub fn new(cap: usize, max_timelines: usize) -> Self {
        Self {
            cap: cap.max(1),
            max_timelines: max_timelines.max(1),
            timelines: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `change` on `reader`'s timeline, creating it (and evicting another if full).
    fn with_timeline(&self, reader: UserId, change: impl FnOnce(&mut Timeline)) {
        let mut timelines = self.timelines.lock().expect("timelines lock poisoned");
        if !timelines.contains_key(&reader) && timelines.len() >= self.max_timelines {
            let evicted = *timelines.keys().next().expect("a full map has a key");
            timelines.remove(&evicted);
        }
        let timeline = timelines.entry(reader).or_default();
        change(timeline);
        while timeline.ids.len() > self.cap {
            timeline.ids.pop_first();
        }
    }
}

#[async_trait]
impl TimelineCache for MemoryTimelines {
    async fn insert(&self, readers: &[UserId], post: PostId) -> Result<(), CacheError> {
        for reader in readers {
            self.with_timeline(*reader, |timeline| {
                timeline.ids.insert(post);
            });
        }
        Ok(())
    }

    async fn remove(&self, readers: &[UserId], post: PostId) -> Result<(), CacheError> {
        let mut timelines = self.timelines.lock().expect("timelines lock poisoned");
        for reader in readers {
            if let Some(timeline) = timelines.get_mut(reader) {
                timeline.ids.remove(&post);
            }
        }
        Ok(())
    }

    async fn add(&self, reader: UserId, posts: &[PostId], built: bool) -> Result<(), CacheError> {
        self.with_timeline(reader, |timeline| {
            timeline.ids.extend(posts.iter().copied());
            timeline.built |= built;
        });
        Ok(())
    }

    async fn remove_posts(&self, reader: UserId, posts: &[PostId]) -> Result<(), CacheError> {
        let mut timelines = self.timelines.lock().expect("timelines lock poisoned");
        if let Some(timeline) = timelines.get_mut(&reader) {
            for post in posts {
                timeline.ids.remove(post);
            }
        }
        Ok(())
    }

    async fn range(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Option<Slice>, CacheError> {
        let timelines = self.timelines.lock().expect("timelines lock poisoned");
        Ok(timelines
            .get(&reader)
            .filter(|timeline| timeline.built)
            .map(|timeline| Slice {
                ids: timeline
                    .ids
                    .iter()
                    .rev()
                    .filter(|id| below.is_none_or(|below| **id < below))
                    .take(limit as usize)
                    .copied()
                    .collect(),
                size: timeline.ids.len(),
            }))
    }

    async fn tail(&self, reader: UserId) -> Result<Option<PostId>, CacheError> {
        let timelines = self.timelines.lock().expect("timelines lock poisoned");
        Ok(timelines
            .get(&reader)
            .filter(|timeline| timeline.built)
            .and_then(|timeline| timeline.ids.first().copied()))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_process_timelines_behave_like_every_timelines_cache() {
        super::super::conformance::all(&MemoryTimelines::new(3, 100)).await;
    }

    #[tokio::test]
    async fn past_its_bound_a_timeline_is_evicted_and_reads_as_not_built() {
        let cache = MemoryTimelines::new(3, 1);
        let (first, second) = (UserId::new(1).unwrap(), UserId::new(2).unwrap());
        cache.add(first, &[], true).await.unwrap();

        cache.add(second, &[], true).await.unwrap();

        assert_eq!(cache.range(first, None, 10).await.unwrap(), None);
        assert!(cache.range(second, None, 10).await.unwrap().is_some());
    }
}
