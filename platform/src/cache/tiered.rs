//! A near cache: a small in-process LRU with a short TTL in front of a shared cache (Redis).
//!
//! Every read of a shared cache is a network round trip. For the hottest keys (the one link
//! everybody is clicking) that round trip is most of the cost of a request, and every instance
//! pays it for the same few keys. Keeping those keys in process for a second or two removes
//! nearly all of those round trips, at a price that must be stated: a write made through *another*
//! instance (a delete, a new value) is seen here only when the local copy expires, so for up to
//! the near TTL. Writes through *this* instance update both tiers at once.
//!
//! Reads: local hit → done; local miss → shared cache → copy kept locally for the near TTL (never
//! longer than asked for on `set`). Writes and deletes go to the shared cache first, then locally.

use std::{num::NonZeroUsize, sync::Arc, time::Duration};

use async_trait::async_trait;

use super::{Cache, CacheError, MemoryCache};

pub struct TieredCache {
    near: MemoryCache,
    near_ttl: Duration,
    shared: Arc<dyn Cache>,
}

impl TieredCache {
    pub fn new(shared: Arc<dyn Cache>, near_ttl: Duration, near_entries: NonZeroUsize) -> Self {
        Self {
            near: MemoryCache::new(near_entries),
            near_ttl,
            shared,
        }
    }
}

#[async_trait]
impl Cache for TieredCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        if let Some(value) = self.near.get(key).await? {
            return Ok(Some(value));
        }
        let value = self.shared.get(key).await?;
        if let Some(value) = &value {
            self.near.set(key, value, self.near_ttl).await?;
        }
        Ok(value)
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        let mut values = self.near.get_many(keys).await?;
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| values[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(values);
        }
        let asked: Vec<&str> = missing.iter().map(|&i| keys[i]).collect();
        let found = self.shared.get_many(&asked).await?;
        for (i, value) in missing.into_iter().zip(found) {
            if let Some(value) = &value {
                self.near.set(keys[i], value, self.near_ttl).await?;
            }
            values[i] = value;
        }
        Ok(values)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        self.shared.set(key, value, ttl).await?;
        self.near.set(key, value, ttl.min(self.near_ttl)).await
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        // Only the shared cache decides: if it already held something, that is newer than what
        // this caller read, and nothing is kept locally either.
        let stored = self.shared.add(key, value, ttl).await?;
        if stored {
            self.near.set(key, value, ttl.min(self.near_ttl)).await?;
        }
        Ok(stored)
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        // Local first: even if the shared delete fails, this instance stops serving the value.
        self.near.delete(key).await?;
        self.shared.delete(key).await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        self.shared.ping().await
    }

    fn backend(&self) -> &'static str {
        self.shared.backend()
    }

    fn describe(&self) -> String {
        self.shared.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::conformance;

    fn shared() -> Arc<MemoryCache> {
        Arc::new(MemoryCache::new(NonZeroUsize::new(100).unwrap()))
    }

    fn instance(shared: &Arc<MemoryCache>) -> TieredCache {
        TieredCache::new(
            shared.clone(),
            Duration::from_secs(2),
            NonZeroUsize::new(100).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_tiered_cache_behaves_like_every_cache() {
        conformance::all(&instance(&shared())).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_hot_key_is_answered_locally_until_the_near_ttl() {
        let shared = shared();
        let cache = instance(&shared);
        cache.set("k", b"v", Duration::from_secs(60)).await.unwrap();

        shared.delete("k").await.unwrap();
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));

        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.get("k").await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_delete_on_another_instance_is_seen_here_within_the_near_ttl() {
        let shared = shared();
        let here = instance(&shared);
        let there = instance(&shared);
        there.set("k", b"v", Duration::from_secs(60)).await.unwrap();
        assert!(here.get("k").await.unwrap().is_some());

        there.delete("k").await.unwrap();

        assert!(
            there.get("k").await.unwrap().is_none(),
            "the deleting instance at once"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            here.get("k").await.unwrap().is_none(),
            "the others within the near TTL"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_lived_value_is_not_kept_locally_past_its_own_ttl() {
        let cache = instance(&shared());
        cache
            .set("k", b"v", Duration::from_millis(500))
            .await
            .unwrap();

        tokio::time::advance(Duration::from_millis(500)).await;

        assert_eq!(cache.get("k").await.unwrap(), None);
    }
}
