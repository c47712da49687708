//! The store behind the `database` fault switch (`PUT /admin/faults/database`): every call passes
//! the switch first, and a switch turned unreachable fails the call with [`StoreError::Fault`]
//! before a statement is sent. What the user then watches is the notifier's own handling of a
//! database outage: intake answers 503 and accepts nothing, each pipeline stage retries its batch
//! with a growing pause, and after the undo every notification accepted before is delivered,
//! once (`DESIGN.md`, "Break it").
//!
//! Intake's two grouped calls, [`NotificationStore::user`] and
//! [`NotificationStore::insert_notification`], are passed through untouched here: their groups
//! pass the switch once per group, where the statement is (`intake.rs`, [`super::intake::Faulty`]).
//! Passing it here too would make each request wait twice under a latency switch.

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use platform::{fault::FaultSwitch, outbox::OutboxEvent};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Attempted, Claim, Claimed, DeadLetter, Decision, Inserted, NotificationRecord,
    NotificationStore, StoreError, Work,
};
use crate::domain::{Channel, Notification, User, UserId};

pub struct FaultyStore {
    inner: Arc<dyn NotificationStore>,
    switch: FaultSwitch,
}

impl FaultyStore {
    /// `inner`, whose intake groups pass `switch` themselves, behind `switch`.
    pub fn new(inner: Arc<dyn NotificationStore>, switch: FaultSwitch) -> Self {
        Self { inner, switch }
    }
}

#[async_trait]
impl NotificationStore for FaultyStore {
    async fn put_user(&self, user: &User, now: OffsetDateTime) -> Result<(), StoreError> {
        self.switch.pass().await?;
        self.inner.put_user(user, now).await
    }

    /// Passed in its group (module docs).
    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.inner.user(id).await
    }

    /// Passed in its group (module docs).
    async fn insert_notification(
        &self,
        notification: &Notification,
        intake: &OutboxEvent,
    ) -> Result<Inserted, StoreError> {
        self.inner.insert_notification(notification, intake).await
    }

    async fn notification(&self, id: Uuid) -> Result<Option<NotificationRecord>, StoreError> {
        self.switch.pass().await?;
        self.inner.notification(id).await
    }

    async fn work(&self, ids: &[Uuid]) -> Result<Vec<Work>, StoreError> {
        self.switch.pass().await?;
        self.inner.work(ids).await
    }

    async fn queued_since(
        &self,
        users: &[String],
        channels: &[Channel],
        since: OffsetDateTime,
        except: &[Uuid],
    ) -> Result<HashMap<(String, Channel), u32>, StoreError> {
        self.switch.pass().await?;
        self.inner
            .queued_since(users, channels, since, except)
            .await
    }

    async fn route(
        &self,
        decisions: &[Decision],
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError> {
        self.switch.pass().await?;
        self.inner.route(decisions, now).await
    }

    async fn claim(
        &self,
        claims: &[Claim],
        now: OffsetDateTime,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.switch.pass().await?;
        self.inner.claim(claims, now).await
    }

    async fn record(&self, attempts: &[Attempted], now: OffsetDateTime) -> Result<(), StoreError> {
        self.switch.pass().await?;
        self.inner.record(attempts, now).await
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        self.switch.pass().await?;
        self.inner.dead_letters(limit).await
    }

    async fn dead_letter(&self, id: Uuid) -> Result<Option<DeadLetter>, StoreError> {
        self.switch.pass().await?;
        self.inner.dead_letter(id).await
    }

    async fn redrive(
        &self,
        id: Uuid,
        job: &OutboxEvent,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.switch.pass().await?;
        self.inner.redrive(id, job, now).await
    }
}
