//! The store behind the `database` fault switch (`PUT /admin/faults/database`): every call passes
//! the switch first, and a switch turned unreachable fails the call with [`StoreError::Fault`]
//! before a statement is sent, so a phase is either whole or not begun. What the user then
//! watches is the protocol's own handling of a database outage: requests answer 503 and store
//! nothing, a payment caught between the provider's answer and its last phase stays charged once
//! and unfinished, and after the undo the completer (or the client's retry) finishes it
//! (`DESIGN.md`, "Break it").

use std::sync::Arc;

use async_trait::async_trait;
use platform::fault::FaultSwitch;
use time::OffsetDateTime;

use super::{Begin, BeginAt, Finish, KeyRecord, Lock, PaymentStore, StoreError};
use crate::domain::{ClientId, Fingerprint, IdempotencyKey, Payment, PaymentId, PaymentRequest};

pub struct FaultyStore {
    inner: Arc<dyn PaymentStore>,
    switch: FaultSwitch,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn PaymentStore>, switch: FaultSwitch) -> Self {
        Self { inner, switch }
    }
}

#[async_trait]
impl PaymentStore for FaultyStore {
    async fn begin(
        &self,
        client: ClientId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        request: &PaymentRequest,
        at: BeginAt,
    ) -> Result<Begin, StoreError> {
        self.switch.pass().await?;
        self.inner
            .begin(client, key, fingerprint, request, at)
            .await
    }

    async fn create_payment(&self, lock: Lock, payment: &Payment) -> Result<(), StoreError> {
        self.switch.pass().await?;
        self.inner.create_payment(lock, payment).await
    }

    async fn finish(&self, lock: Lock, finish: &Finish<'_>) -> Result<(), StoreError> {
        self.switch.pass().await?;
        self.inner.finish(lock, finish).await
    }

    #[cfg(feature = "bench")]
    async fn insert_payment(&self, payment: &Payment) -> Result<(), StoreError> {
        self.switch.pass().await?;
        self.inner.insert_payment(payment).await
    }

    #[cfg(feature = "bench")]
    async fn complete_payment(&self, finish: &Finish<'_>) -> Result<(), StoreError> {
        self.switch.pass().await?;
        self.inner.complete_payment(finish).await
    }

    async fn unlock(&self, lock: Lock, now: OffsetDateTime) -> Result<(), StoreError> {
        self.switch.pass().await?;
        self.inner.unlock(lock, now).await
    }

    async fn lock_abandoned(
        &self,
        idle_before: OffsetDateTime,
        stale_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<(KeyRecord, Lock)>, StoreError> {
        self.switch.pass().await?;
        self.inner
            .lock_abandoned(idle_before, stale_before, now)
            .await
    }

    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        self.switch.pass().await?;
        self.inner.payment(id).await
    }

    async fn payments(
        &self,
        client: ClientId,
        limit: u32,
        before: Option<PaymentId>,
    ) -> Result<Vec<Payment>, StoreError> {
        self.switch.pass().await?;
        self.inner.payments(client, limit, before).await
    }

    async fn delete_expired_keys(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.switch.pass().await?;
        self.inner.delete_expired_keys(before, limit).await
    }
}
