//! The store behind its fault switch (`PUT /admin/faults/redis`): every decision passes the
//! switch first, on Redis and on the in-process store alike. An unreachable switch fails the
//! decision with [`StoreError::Fault`], and a latency past a rule's timeout runs into that
//! timeout, so each rule answers by its failure policy (open or closed) exactly as it does when
//! Redis is down or slow (DESIGN.md §6, "Break it").

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use platform::fault::FaultSwitch;

use super::{Check, Decision, Store, StoreError};

pub struct FaultyStore {
    inner: Arc<dyn Store>,
    switch: FaultSwitch,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>, switch: FaultSwitch) -> Self {
        Self { inner, switch }
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn decide(&self, checks: &[Check<'_>]) -> Result<Vec<Decision>, StoreError> {
        self.switch.pass().await?;
        self.inner.decide(checks).await
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn resolution(&self) -> Duration {
        self.inner.resolution()
    }

    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }

    /// With a latency set, even the in-process store is slow, and the rules' timeouts must
    /// bound it as they bound Redis.
    fn may_stall(&self) -> bool {
        self.inner.may_stall() || self.switch.get().latency_ms > 0
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.switch.pass().await?;
        self.inner.ping().await
    }
}
