//! A cache behind a fault switch ([`crate::fault`]): every call passes the switch first, so the
//! switch can make the cache slow or unreachable, on Redis and on the in-process cache alike.
//!
//! The switch's latency counts against the deadline a slow Redis is given (the system's Redis
//! timeout): a call that would wait longer fails with [`CacheError::TimedOut`] at the deadline,
//! as a Redis command past its response timeout does, and the caller's fallback (cache-aside
//! reads the database) is what the user watches. Without that bound a slow switch would only
//! slow every request down, since the in-process cache has no timeout of its own and Redis's
//! applies to the command alone, not to the wait in front of it.

use std::{future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;

use super::{Cache, CacheError};
use crate::fault::FaultSwitch;

pub struct FaultyCache {
    inner: Arc<dyn Cache>,
    switch: FaultSwitch,
    timeout: Duration,
}

impl FaultyCache {
    /// `inner` behind `switch`; `timeout` is the system's Redis timeout
    /// (`CacheConfig::redis_timeout`), which the switch's latency counts against.
    pub fn new(inner: Arc<dyn Cache>, switch: FaultSwitch, timeout: Duration) -> Self {
        Self {
            inner,
            switch,
            timeout,
        }
    }

    /// Passes the switch, then makes `call`.
    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        pass_within(&self.switch, self.timeout, call).await
    }
}

/// Passes `switch`, then makes `call`, giving up after `timeout` (the system's Redis timeout)
/// while the switch adds latency: a slow switch then fails the call as a slow Redis would, rather
/// than only slowing it down. For every cache behind a switch, this one and a system's own
/// (the feed's timelines).
pub async fn pass_within<T>(
    switch: &FaultSwitch,
    timeout: Duration,
    call: impl Future<Output = Result<T, CacheError>>,
) -> Result<T, CacheError> {
    let passed_then_called = async {
        switch.pass().await?;
        call.await
    };
    // A healthy switch adds no wait, so no timer is armed on the path every request takes.
    if switch.get().latency_ms == 0 {
        return passed_then_called.await;
    }
    tokio::time::timeout(timeout, passed_then_called)
        .await
        .map_err(|_elapsed| CacheError::TimedOut(timeout))?
}

#[async_trait]
impl Cache for FaultyCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.call(self.inner.get(key)).await
    }

    // Passed once for the whole page: it is one command (`MGET`), as the inner cache sends it.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        self.call(self.inner.get_many(keys)).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        self.call(self.inner.set(key, value, ttl)).await
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        self.call(self.inner.add(key, value, ttl)).await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.call(self.inner.delete(key)).await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        self.call(self.inner.ping()).await
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::{
        cache::{MemoryCache, conformance},
        fault::Fault,
    };

    const TIMEOUT: Duration = Duration::from_millis(250);

    fn behind_a_switch() -> (Arc<MemoryCache>, FaultSwitch, FaultyCache) {
        let inner = Arc::new(MemoryCache::new(NonZeroUsize::new(100).unwrap()));
        let switch = FaultSwitch::new("test-system", "redis");
        let cache = FaultyCache::new(inner.clone(), switch.clone(), TIMEOUT);
        (inner, switch, cache)
    }

    fn unreachable() -> Fault {
        Fault {
            latency_ms: 0,
            unreachable: true,
        }
    }

    fn slow(latency_ms: u64) -> Fault {
        Fault {
            latency_ms,
            unreachable: false,
        }
    }

    #[tokio::test]
    async fn a_healthy_switch_leaves_a_cache_that_behaves_like_every_cache() {
        let (_, _, cache) = behind_a_switch();
        conformance::all(&cache).await;
    }

    #[tokio::test]
    async fn switched_unreachable_every_call_fails_and_nothing_reaches_the_cache() {
        let (inner, switch, cache) = behind_a_switch();
        let ttl = Duration::from_secs(60);
        cache.set("kept", b"v", ttl).await.unwrap();

        switch.set(unreachable());

        let unreachable = |result: Result<(), CacheError>| {
            assert!(
                matches!(result, Err(CacheError::Fault(ref fault)) if fault.dependency == "redis"),
                "{result:?}"
            );
        };
        unreachable(cache.get("kept").await.map(drop));
        unreachable(cache.get_many(&["kept"]).await.map(drop));
        unreachable(cache.set("new", b"v", ttl).await);
        unreachable(cache.add("added", b"v", ttl).await.map(drop));
        unreachable(cache.delete("kept").await);
        unreachable(cache.ping().await);
        assert_eq!(inner.get("new").await.unwrap(), None);
        assert_eq!(inner.get("added").await.unwrap(), None);
        assert!(inner.get("kept").await.unwrap().is_some(), "not deleted");

        switch.set(Fault::default());
        assert_eq!(cache.get("kept").await.unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_switch_slower_than_the_timeout_fails_the_call_at_the_timeout() {
        let (inner, switch, cache) = behind_a_switch();
        switch.set(slow(1_000));

        let started = tokio::time::Instant::now();
        let result = cache.set("k", b"v", Duration::from_secs(60)).await;

        assert!(
            matches!(result, Err(CacheError::TimedOut(t)) if t == TIMEOUT),
            "{result:?}"
        );
        assert_eq!(started.elapsed(), TIMEOUT);
        assert_eq!(inner.get("k").await.unwrap(), None, "never sent");
    }

    #[tokio::test(start_paused = true)]
    async fn a_switch_within_the_timeout_only_slows_the_call() {
        let (_, switch, cache) = behind_a_switch();
        switch.set(slow(100));

        let started = tokio::time::Instant::now();
        cache.set("k", b"v", Duration::from_secs(60)).await.unwrap();

        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }
}
