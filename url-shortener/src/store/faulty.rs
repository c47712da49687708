//! The database behind its fault switch (`PUT /admin/faults/database`): every call to the links
//! and to the API keys passes the switch first, and an unreachable switch fails it with
//! [`StoreError::Fault`] before a statement is sent, so nothing is half-written. What the user
//! then watches is the shortener's own handling of a database outage: cached links keep
//! redirecting, everything that needs the database answers 503, and visit tallies wait in memory
//! for the flush that succeeds (DESIGN.md, "Break it").
//!
//! Since every call to the links passes here, here is also where they are counted:
//! `shortener_store_queries_total{call}` counts the calls sent to the database, by the store's
//! method. It is what shows a cached redirect sending none (`sdlab walkthrough url-shortener`).

use std::sync::Arc;

use async_trait::async_trait;
use platform::{
    auth::{ApiKey, ApiKeyRecord, ApiKeys},
    fault::FaultSwitch,
};
use time::OffsetDateTime;

use super::{LinkStore, StoreError, VisitDelta};
use crate::domain::{Link, NewLink, ShortCode};

pub struct FaultyStore {
    inner: Arc<dyn LinkStore>,
    switch: FaultSwitch,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn LinkStore>, switch: FaultSwitch) -> Self {
        Self { inner, switch }
    }

    /// Passes the switch, then counts `call` as sent to the database.
    async fn send(&self, call: &'static str) -> Result<(), StoreError> {
        self.switch.pass().await?;
        metrics::counter!("shortener_store_queries_total", "call" => call).increment(1);
        Ok(())
    }
}

#[async_trait]
impl LinkStore for FaultyStore {
    async fn lease_ids(&self, count: u64) -> Result<u64, StoreError> {
        self.send("lease_ids").await?;
        self.inner.lease_ids(count).await
    }

    async fn insert_link(&self, link: &NewLink) -> Result<(), StoreError> {
        self.send("insert_link").await?;
        self.inner.insert_link(link).await
    }

    async fn find_link(&self, code: &ShortCode) -> Result<Option<Link>, StoreError> {
        self.send("find_link").await?;
        self.inner.find_link(code).await
    }

    async fn delete_link(&self, code: &ShortCode, at: OffsetDateTime) -> Result<bool, StoreError> {
        self.send("delete_link").await?;
        self.inner.delete_link(code, at).await
    }

    async fn consume_visit(
        &self,
        code: &ShortCode,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.send("consume_visit").await?;
        self.inner.consume_visit(code, now).await
    }

    async fn add_visits(&self, batch: &[(ShortCode, VisitDelta)]) -> Result<(), StoreError> {
        self.send("add_visits").await?;
        self.inner.add_visits(batch).await
    }
}

/// The API keys, behind the same switch: they live in the same database as the links, so a
/// database that is down refuses to authenticate as well.
pub struct FaultyKeys {
    keys: ApiKeys,
    switch: FaultSwitch,
}

impl FaultyKeys {
    pub fn new(keys: ApiKeys, switch: FaultSwitch) -> Self {
        Self { keys, switch }
    }

    /// A new key stored under `name` ([`ApiKeys::issue`]).
    pub async fn issue(
        &self,
        name: &str,
        at: OffsetDateTime,
    ) -> Result<(ApiKey, ApiKeyRecord), StoreError> {
        self.switch.pass().await?;
        Ok(self.keys.issue(name, at).await?)
    }

    /// The stored key, if `key` was issued here ([`ApiKeys::find`]).
    pub async fn find(&self, key: &ApiKey) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.switch.pass().await?;
        Ok(self.keys.find(key).await?)
    }
}
