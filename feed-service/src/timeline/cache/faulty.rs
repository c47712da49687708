//! A timelines cache behind the `redis` fault switch (`platform::fault`): every call passes the
//! switch first, on Redis and on the in-process timelines alike, as `platform::cache::FaultyCache`
//! does for the post cache beside it (the same switch: on the real engines both are one Redis).
//!
//! Unreachable, a call fails with `CacheError::Fault` before it reaches the cache. Slow, the
//! switch's latency counts against the Redis timeout, as it does in `FaultyCache`: a call that
//! would wait longer fails at the timeout with `CacheError::TimedOut`, as a Redis command past
//! its response timeout does. Either way the service does what it does with Redis down: a feed
//! read under push or hybrid is a 503, a post still commits, and the fan-out worker retries the
//! event it holds until the switch is undone (DESIGN.md, "Break it").

use std::{future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use platform::{
    cache::{CacheError, pass_within},
    fault::FaultSwitch,
};

use super::{Slice, TimelineCache};
use crate::domain::{PostId, UserId};

pub struct FaultyTimelines {
    inner: Arc<dyn TimelineCache>,
    switch: FaultSwitch,
    timeout: Duration,
}

impl FaultyTimelines {
    /// `inner` behind `switch`; `timeout` is the Redis timeout, which the switch's latency counts
    /// against.
    pub fn new(inner: Arc<dyn TimelineCache>, switch: FaultSwitch, timeout: Duration) -> Self {
        Self {
            inner,
            switch,
            timeout,
        }
    }

    /// Passes the switch, then makes `call` (as the platform's caches do).
    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        pass_within(&self.switch, self.timeout, call).await
    }
}

#[async_trait]
impl TimelineCache for FaultyTimelines {
    async fn insert(&self, readers: &[UserId], post: PostId) -> Result<(), CacheError> {
        self.call(self.inner.insert(readers, post)).await
    }

    async fn remove(&self, readers: &[UserId], post: PostId) -> Result<(), CacheError> {
        self.call(self.inner.remove(readers, post)).await
    }

    async fn forget(&self, readers: &[UserId]) -> Result<(), CacheError> {
        self.call(self.inner.forget(readers)).await
    }

    async fn add(&self, reader: UserId, posts: &[PostId], built: bool) -> Result<(), CacheError> {
        self.call(self.inner.add(reader, posts, built)).await
    }

    async fn touch(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Option<Slice>, CacheError> {
        self.call(self.inner.touch(reader, below, limit)).await
    }

    async fn remove_posts(&self, reader: UserId, posts: &[PostId]) -> Result<(), CacheError> {
        self.call(self.inner.remove_posts(reader, posts)).await
    }

    async fn range(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Option<Slice>, CacheError> {
        self.call(self.inner.range(reader, below, limit)).await
    }

    // Passed once for all of them: it is one pipeline, as the inner cache sends it.
    async fn range_many(
        &self,
        readers: &[UserId],
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Option<Slice>>, CacheError> {
        self.call(self.inner.range_many(readers, below, limit))
            .await
    }

    async fn tail(&self, reader: UserId) -> Result<Option<PostId>, CacheError> {
        self.call(self.inner.tail(reader)).await
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

#[cfg(test)]
mod tests {
    use platform::{clock::SystemClock, fault::Fault};

    use super::*;
    use crate::timeline::cache::{MemoryTimelines, conformance};

    fn behind_a_switch() -> (FaultSwitch, FaultyTimelines) {
        // A cap of 3, as the conformance suite wants.
        let inner = Arc::new(MemoryTimelines::new(
            3,
            100,
            Duration::from_secs(3_600),
            Arc::new(SystemClock),
        ));
        let switch = FaultSwitch::new("test-system", "redis");
        let timeout = Duration::from_millis(250);
        (switch.clone(), FaultyTimelines::new(inner, switch, timeout))
    }

    #[tokio::test]
    async fn a_healthy_switch_leaves_timelines_that_behave_like_every_timelines_cache() {
        let (_, timelines) = behind_a_switch();
        conformance::all(&timelines).await;
    }

    #[tokio::test]
    async fn switched_unreachable_every_call_fails_until_it_is_undone() {
        let (switch, timelines) = behind_a_switch();
        let (reader, post) = (UserId::new(1).unwrap(), PostId::new(7).unwrap());
        timelines.add(reader, &[post], true).await.unwrap();

        switch.set(Fault {
            latency_ms: 0,
            unreachable: true,
        });

        let failed = timelines.range(reader, None, 10).await;
        assert!(
            matches!(failed, Err(CacheError::Fault(ref fault)) if fault.dependency == "redis"),
            "{failed:?}"
        );
        let failed = timelines.insert(&[reader], PostId::new(8).unwrap()).await;
        assert!(matches!(failed, Err(CacheError::Fault(_))), "{failed:?}");

        switch.set(Fault::default());
        let slice = timelines.range(reader, None, 10).await.unwrap().unwrap();
        assert_eq!(
            slice.ids,
            [post],
            "the insert made while unreachable never landed"
        );
    }
}
