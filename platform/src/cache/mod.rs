//! A key/value cache with per-entry TTLs: Redis when `REDIS_URL` is set, an in-process LRU
//! otherwise.
//!
//! The trait is deliberately small (get, set with a TTL, add-if-absent, delete): it is what
//! cache-aside needs, and the backends implement it with the same behaviour, which the tests below
//! check on each. [`TieredCache`] puts a short-lived in-process copy in front of Redis, and
//! [`FaultyCache`] puts a fault switch in front of any cache, to make it slow or unreachable.
//! Systems that need richer structures (sorted sets for timelines, Lua scripts for rate limits)
//! define their own trait next to their domain rather than growing this one.
//!
//! Every cache is namespaced: keys are stored as `<namespace><key>`, so several systems (and
//! several tests) can share one Redis without meeting.
//!
//! Errors are returned, not swallowed: a cache that is down must not take the service down, but
//! whether to fall back to the database is the caller's decision (cache-aside does; a limiter
//! that fails closed does not).

mod faulty;
mod memory;
mod redis;
mod tiered;

use std::{num::NonZeroUsize, sync::Arc, time::Duration};

use async_trait::async_trait;

pub use self::{
    faulty::{FaultyCache, pass_within},
    memory::MemoryCache,
    redis::RedisCache,
    tiered::TieredCache,
};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Its fault switch is on (see [`FaultyCache`]).
    #[error(transparent)]
    Fault(#[from] crate::fault::Unreachable),
    /// Its fault switch delays it past the system's Redis timeout (see [`FaultyCache`]).
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;

    /// The values under `keys`, in the same order, `None` where absent (Redis `MGET`): a page of
    /// keys in one command and one round trip, rather than a command each. The default asks
    /// `get` for each key at once.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        futures::future::try_join_all(keys.iter().map(|key| self.get(key))).await
    }

    /// Stores `value` under `key` for `ttl` (rounded up to whole milliseconds), replacing any
    /// previous value and TTL.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError>;

    /// Stores `value` only if `key` holds nothing (Redis `SET … NX`); `true` if it was stored.
    ///
    /// This is how a read fills the cache after a miss: if a writer (a delete, a create) has put
    /// something there since the read began, the writer's value is newer and must win.
    async fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError>;

    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), CacheError>;

    /// A round trip to the backend, for readiness checks.
    async fn ping(&self) -> Result<(), CacheError>;

    /// `"redis"` or `"memory"`, for logs and banners.
    fn backend(&self) -> &'static str;

    /// Which backend and where, for `/readyz` and banners: `Redis at 127.0.0.1:6379`, or
    /// `in-process`. Never a password.
    fn describe(&self) -> String {
        match self.backend() {
            "memory" => "in-process".to_owned(),
            other => other.to_owned(),
        }
    }
}

/// How a system asks for its cache.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `REDIS_URL`, if set.
    pub redis_url: Option<String>,
    /// Prepended to every key, e.g. `url-shortener:`.
    pub namespace: String,
    /// Entry bound for the in-process cache (Redis is bounded by its own `maxmemory`).
    pub max_entries: NonZeroUsize,
    /// How long a Redis command may take before it fails (and the caller falls back).
    pub redis_timeout: Duration,
    /// With Redis: keep what is read for this long in process too (see [`TieredCache`]), so hot
    /// keys cost no round trip. `None` reads Redis every time.
    pub near_ttl: Option<Duration>,
}

/// The one place that chooses the cache backend.
pub async fn connect(config: &CacheConfig) -> Result<Arc<dyn Cache>, CacheError> {
    let Some(url) = &config.redis_url else {
        return Ok(Arc::new(MemoryCache::new(config.max_entries)));
    };
    let redis =
        Arc::new(RedisCache::connect(url, config.namespace.clone(), config.redis_timeout).await?);
    Ok(match config.near_ttl.filter(|ttl| !ttl.is_zero()) {
        Some(near_ttl) => Arc::new(TieredCache::new(redis, near_ttl, config.max_entries)),
        None => redis,
    })
}

/// Behaviour both backends must share, run against each in its own module's tests and against
/// Redis in the `testing` suite.
#[cfg(any(test, feature = "testing"))]
pub mod conformance {
    use super::*;

    pub async fn set_then_get_returns_the_value(cache: &dyn Cache) {
        cache
            .set("k1", b"v1", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(cache.get("k1").await.unwrap().as_deref(), Some(&b"v1"[..]));
    }

    pub async fn a_missing_key_is_none(cache: &dyn Cache) {
        assert_eq!(cache.get("never-set").await.unwrap(), None);
    }

    pub async fn set_replaces_the_value(cache: &dyn Cache) {
        cache
            .set("k2", b"old", Duration::from_secs(60))
            .await
            .unwrap();
        cache
            .set("k2", b"new", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(cache.get("k2").await.unwrap().as_deref(), Some(&b"new"[..]));
    }

    pub async fn delete_removes_and_is_idempotent(cache: &dyn Cache) {
        cache
            .set("k3", b"v", Duration::from_secs(60))
            .await
            .unwrap();
        cache.delete("k3").await.unwrap();
        cache.delete("k3").await.unwrap();
        assert_eq!(cache.get("k3").await.unwrap(), None);
    }

    pub async fn add_stores_only_into_an_empty_key(cache: &dyn Cache) {
        let ttl = Duration::from_secs(60);
        assert!(cache.add("k4", b"first", ttl).await.unwrap());
        assert!(!cache.add("k4", b"second", ttl).await.unwrap());
        assert_eq!(
            cache.get("k4").await.unwrap().as_deref(),
            Some(&b"first"[..])
        );
    }

    pub async fn get_many_answers_in_order_with_none_for_the_absent(cache: &dyn Cache) {
        let ttl = Duration::from_secs(60);
        cache.set("m1", b"one", ttl).await.unwrap();
        cache.set("m3", b"three", ttl).await.unwrap();
        let values = cache.get_many(&["m3", "m2", "m1", "m3"]).await.unwrap();
        assert_eq!(
            values,
            [
                Some(b"three".to_vec()),
                None,
                Some(b"one".to_vec()),
                Some(b"three".to_vec())
            ]
        );
        assert_eq!(
            cache.get_many(&[]).await.unwrap(),
            Vec::<Option<Vec<u8>>>::new()
        );
    }

    pub async fn ping_answers(cache: &dyn Cache) {
        cache.ping().await.unwrap();
    }

    pub async fn all(cache: &dyn Cache) {
        set_then_get_returns_the_value(cache).await;
        a_missing_key_is_none(cache).await;
        set_replaces_the_value(cache).await;
        delete_removes_and_is_idempotent(cache).await;
        add_stores_only_into_an_empty_key(cache).await;
        get_many_answers_in_order_with_none_for_the_absent(cache).await;
        ping_answers(cache).await;
    }
}
