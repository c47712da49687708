//! The embedded cache: an LRU map with a TTL per entry, bounded by entry count.
//!
//! One `std::sync::Mutex` around the map, not an async mutex and not a concurrent map: every
//! operation is a few hundred nanoseconds and never awaits while holding the lock, so contention
//! is negligible at the request rates one process serves (the same reasoning as mini-redis's
//! `db.rs`). An LRU rather than a plain map so that a flood of distinct keys (say, random short
//! codes) evicts the coldest entries instead of growing without bound.
//!
//! Expired entries are not swept by a background task: a read finds them expired and removes
//! them, and the LRU bound evicts the ones nobody reads again. Time is tokio's monotonic clock, so
//! tests move it with `tokio::time::pause()` and `advance`.

use std::{num::NonZeroUsize, sync::Mutex, time::Duration};

use async_trait::async_trait;
use lru::LruCache;
use tokio::time::Instant;

use super::{Cache, CacheError};

pub struct MemoryCache {
    entries: Mutex<LruCache<String, Entry>>,
}

struct Entry {
    value: Vec<u8>,
    expires_at: Instant,
}

impl MemoryCache {
    pub fn new(max_entries: NonZeroUsize) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(max_entries)),
        }
    }

    /// Entries held, expired ones included until they are read or evicted.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("len", &self.len())
            .finish()
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut entries = self.entries.lock().unwrap();
        match entries.get(key) {
            Some(entry) if entry.expires_at > Instant::now() => Ok(Some(entry.value.clone())),
            Some(_) => {
                entries.pop(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap();
        Ok(keys
            .iter()
            .map(|key| match entries.get(*key) {
                Some(entry) if entry.expires_at > now => Some(entry.value.clone()),
                Some(_) => {
                    entries.pop(*key);
                    None
                }
                None => None,
            })
            .collect())
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let entry = Entry {
            value: value.to_vec(),
            expires_at: Instant::now() + ttl,
        };
        self.entries.lock().unwrap().put(key.to_owned(), entry);
        Ok(())
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap();
        if entries
            .peek(key)
            .is_some_and(|entry| entry.expires_at > now)
        {
            return Ok(false);
        }
        let entry = Entry {
            value: value.to_vec(),
            expires_at: now + ttl,
        };
        entries.put(key.to_owned(), entry);
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.entries.lock().unwrap().pop(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::conformance;

    fn cache(max_entries: usize) -> MemoryCache {
        MemoryCache::new(NonZeroUsize::new(max_entries).unwrap())
    }

    #[tokio::test]
    async fn the_memory_cache_behaves_like_every_cache() {
        conformance::all(&cache(100)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_is_served_until_its_ttl_and_not_after() {
        let cache = cache(100);
        cache.set("k", b"v", Duration::from_secs(10)).await.unwrap();

        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(cache.get("k").await.unwrap().is_some());

        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(cache.get("k").await.unwrap().is_none());
        assert!(cache.is_empty(), "a read of an expired entry removes it");
    }

    #[tokio::test(start_paused = true)]
    async fn add_treats_an_expired_entry_as_empty() {
        let cache = cache(100);
        cache
            .set("k", b"old", Duration::from_secs(1))
            .await
            .unwrap();

        tokio::time::advance(Duration::from_secs(1)).await;

        assert!(
            cache
                .add("k", b"new", Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"new"[..]));
    }

    #[tokio::test]
    async fn the_least_recently_used_entry_is_evicted_at_the_bound() {
        let cache = cache(2);
        let ttl = Duration::from_secs(60);
        cache.set("a", b"1", ttl).await.unwrap();
        cache.set("b", b"2", ttl).await.unwrap();
        cache.get("a").await.unwrap();

        cache.set("c", b"3", ttl).await.unwrap();

        assert_eq!(cache.len(), 2);
        assert!(cache.get("a").await.unwrap().is_some());
        assert!(cache.get("b").await.unwrap().is_none());
        assert!(cache.get("c").await.unwrap().is_some());
    }
}
