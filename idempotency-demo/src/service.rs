//! The use cases: take a payment exactly once, read payments, and the two background jobs that
//! keep keys honest (the completer and the reaper).
//!
//! [`Payments::create`] is the whole idempotency protocol:
//! 1. [`PaymentStore::begin`] inserts or finds the client's key, in one transaction.
//! 2. Found and finished: the stored answer is replayed, byte for byte. Found with another
//!    fingerprint: 422. Found and locked by a live request: 409 with `Retry-After`.
//! 3. Otherwise this request holds the key's lock and drives it through the remaining phases
//!    ([`crate::domain::RecoveryPoint`]), each atomic, calling the provider between the second
//!    and the third.
//!
//! When a phase fails in a way a retry can fix (the provider did not answer, the database
//! hiccuped) the key is unlocked where it stands and nothing is stored: the client's retry with
//! the same key resumes from the last recovery point. Stripe instead stores a 500 and replays it;
//! we do what rocket-rides-atomic does, because every phase here is safe to resume, and a stored
//! 500 would leave a payment pending with nobody to finish it but the completer.

use std::{sync::Arc, time::Duration};

use axum::http::StatusCode;
use platform::{
    auth::{ApiKey, ApiKeys},
    clock::Clock,
    outbox::OutboxEvent,
    problem::Problem,
    shutdown::CancellationToken,
};
use serde::Serialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::sync::Notify;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    domain::{
        ClientId, Fingerprint, IdempotencyKey, Payment, PaymentId, PaymentRequest, PaymentStatus,
        RecoveryPoint,
    },
    error::PaymentError,
    provider::{ChargeOutcome, ProviderClient, ProviderError},
    store::{Begin, BeginAt, Finish, KeyRecord, Lock, PaymentStore, StoreError, StoredResponse},
};

/// The topic finished payments are announced on, unless `PAYMENTS_EVENTS_TOPIC` says otherwise.
pub const TOPIC: &str = "payments.events";

/// The method and path payments are created with, part of every fingerprint (see
/// `domain/fingerprint.rs`).
pub const PAYMENTS_METHOD: &str = "POST";
pub const PAYMENTS_PATH: &str = "/v1/payments";

/// Time limits of the protocol.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a finished key replays; after that it is deleted and the key can be reused.
    pub retention: Duration,
    /// A lock older than this is presumed abandoned (its process died) and may be taken over.
    /// Longer than any request can live (the HTTP stack cuts requests at 30 s).
    pub lock_timeout: Duration,
    /// How long the completer leaves an unfinished, unlocked key to its client's own retry.
    pub completer_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(24 * 3600),
            lock_timeout: Duration::from_secs(60),
            completer_grace: Duration::from_secs(60),
        }
    }
}

/// An answer to `POST /v1/payments`: fresh, or replayed from the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub replayed: bool,
}

/// A payment as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentView {
    #[schema(example = "pay_0193a1b2c3d4e5f6a7b8c9d0e1f2a3b4")]
    pub id: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: PaymentStatus,
    pub amount: u64,
    #[schema(example = "USD")]
    pub currency: String,
    pub source: String,
    pub description: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// The provider's charge id, once the provider answered.
    pub provider_reference: Option<String>,
    /// Why the provider declined, for a failed payment.
    pub failure_code: Option<String>,
}

impl From<&Payment> for PaymentView {
    fn from(payment: &Payment) -> Self {
        Self {
            id: payment.id.to_string(),
            status: payment.status,
            amount: payment.request.amount,
            currency: payment.request.currency.as_str().to_owned(),
            source: payment.request.source.clone(),
            description: payment.request.description.clone(),
            created_at: payment
                .created_at
                .format(&Rfc3339)
                .expect("a stored time formats"),
            provider_reference: payment.provider_charge.clone(),
            failure_code: payment.failure_code.clone(),
        }
    }
}

/// A client of the API: the owner of an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub id: ClientId,
    pub name: String,
}

/// The 402 body: a problem, with the failed payment.
#[derive(Serialize)]
struct Declined<'a> {
    #[serde(flatten)]
    problem: Problem,
    decline_code: &'a str,
    payment: PaymentView,
}

pub struct Payments {
    store: Arc<dyn PaymentStore>,
    clients: ApiKeys,
    provider: ProviderClient,
    clock: Arc<dyn Clock>,
    timing: Timing,
    topic: String,
    /// Notified when a payment finishes: its outbox event is ready for the relay.
    finished: Arc<Notify>,
}

impl Payments {
    pub fn new(
        store: Arc<dyn PaymentStore>,
        clients: ApiKeys,
        provider: ProviderClient,
        clock: Arc<dyn Clock>,
        timing: Timing,
    ) -> Self {
        Self {
            store,
            clients,
            provider,
            clock,
            timing,
            topic: TOPIC.to_owned(),
            finished: Arc::default(),
        }
    }

    /// Announces payments on `topic` instead of [`TOPIC`].
    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// Notified each time a payment finishes (and so writes an outbox event).
    pub fn finished(&self) -> Arc<Notify> {
        self.finished.clone()
    }

    pub fn store(&self) -> &Arc<dyn PaymentStore> {
        &self.store
    }

    /// A new client and its API key, shown this once.
    pub async fn create_client(&self, name: &str) -> Result<(ClientRecord, ApiKey), PaymentError> {
        let (key, record) = self
            .clients
            .issue(name, self.clock.now())
            .await
            .map_err(StoreError::Database)?;
        let client = ClientRecord {
            id: ClientId(record.id),
            name: record.name,
        };
        Ok((client, key))
    }

    /// Makes sure `key` belongs to a client (the lab's fixed demo key); idempotent.
    pub async fn ensure_client(&self, name: &str, key: &ApiKey) -> Result<(), PaymentError> {
        self.clients
            .ensure(key, name, self.clock.now())
            .await
            .map_err(StoreError::Database)?;
        Ok(())
    }

    pub async fn authenticate(&self, key: &ApiKey) -> Result<ClientRecord, PaymentError> {
        let record = self
            .clients
            .find(key)
            .await
            .map_err(StoreError::Database)?
            .ok_or(PaymentError::UnknownClient)?;
        Ok(ClientRecord {
            id: ClientId(record.id),
            name: record.name,
        })
    }

    /// Takes a payment once per (client, key), whatever the number of retries. Counts the
    /// request in `payments_requests_total{outcome}` ([`outcome`]).
    #[tracing::instrument(skip(self, request), fields(client = client.0, key = %key))]
    pub async fn create(
        &self,
        client: ClientId,
        key: &IdempotencyKey,
        request: PaymentRequest,
    ) -> Result<Answer, PaymentError> {
        let result = self.take(client, key, request).await;
        metrics::counter!("payments_requests_total", "outcome" => outcome(&result)).increment(1);
        result
    }

    async fn take(
        &self,
        client: ClientId,
        key: &IdempotencyKey,
        request: PaymentRequest,
    ) -> Result<Answer, PaymentError> {
        let fingerprint = Fingerprint::of(PAYMENTS_METHOD, PAYMENTS_PATH, &request);
        let now = self.clock.now();
        let at = BeginAt {
            now,
            expired_before: now - self.timing.retention,
            stale_before: now - self.timing.lock_timeout,
        };
        match self
            .store
            .begin(client, key, &fingerprint, &request, at)
            .await?
        {
            Begin::Acquired(record, lock) => {
                let response = self.drive(record, lock).await?;
                Ok(answer(response, false))
            }
            Begin::Existing(record) if record.fingerprint != fingerprint.0 => {
                Err(PaymentError::KeyReused)
            }
            Begin::Existing(KeyRecord {
                response: Some(response),
                ..
            }) => Ok(answer(response, true)),
            // A payment takes well under a second when the provider is healthy.
            Begin::Existing(_) => Err(PaymentError::InFlight {
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    /// Runs a locked key's remaining phases; on a failure a retry can fix, unlocks it where it
    /// stands.
    async fn drive(
        &self,
        mut record: KeyRecord,
        lock: Lock,
    ) -> Result<StoredResponse, PaymentError> {
        let result = self.run_phases(&mut record, lock).await;
        if let Err(err) = &result
            && !matches!(err, PaymentError::Store(StoreError::LockLost))
        {
            // Without this the key would stay locked until the lock timeout, and every retry
            // until then would get a 409.
            if let Err(unlock) = self.store.unlock(lock, self.clock.now()).await {
                tracing::warn!(error = %platform::problem::error_chain(&unlock), "cannot unlock the key; it frees itself after the lock timeout");
            }
        }
        result
    }

    async fn run_phases(
        &self,
        record: &mut KeyRecord,
        lock: Lock,
    ) -> Result<StoredResponse, PaymentError> {
        // The payment as this run wrote it; a run resuming at `payment_created` reads it back.
        let mut created = None;
        loop {
            match record.recovery_point {
                RecoveryPoint::Started => {
                    let payment = self.new_payment(record.client, record.request.clone());
                    self.store.create_payment(lock, &payment).await?;
                    record.payment = Some(payment.id);
                    record.recovery_point = RecoveryPoint::PaymentCreated;
                    created = Some(payment);
                }
                RecoveryPoint::PaymentCreated => {
                    let payment = match created.take() {
                        Some(payment) => payment,
                        None => {
                            let id = record.payment.ok_or_else(|| {
                                StoreError::Corrupt("a created payment's key has no payment".into())
                            })?;
                            self.store.payment(id).await?.ok_or_else(|| {
                                StoreError::Corrupt(format!("the key's payment {id} is missing"))
                            })?
                        }
                    };
                    let (payment, outcome) = self.charge(payment).await?;
                    let response = render(&payment);
                    let event = event(&payment, &self.topic, self.clock.now());
                    self.store
                        .finish(lock, &finish(&payment, &outcome, &response, &event))
                        .await?;
                    self.finished.notify_one();
                    metrics::counter!("payments_total", "status" => payment.status.as_str())
                        .increment(1);
                    return Ok(response);
                }
                RecoveryPoint::Finished => {
                    return Err(StoreError::Corrupt("a finished key was locked".into()).into());
                }
            }
        }
    }

    fn new_payment(&self, client: ClientId, request: PaymentRequest) -> Payment {
        Payment {
            id: PaymentId::generate(),
            client,
            request,
            status: PaymentStatus::Pending,
            provider_charge: None,
            failure_code: None,
            created_at: self.clock.now(),
        }
    }

    /// Charges a payment at the provider and returns it as the answer leaves it.
    async fn charge(&self, mut payment: Payment) -> Result<(Payment, ChargeOutcome), PaymentError> {
        // The provider's idempotency key is our payment's id: one per (client, key), fixed
        // before the first call, so every retry of this charge reuses it.
        let outcome = self
            .provider
            .charge(&payment.id.to_string(), &payment.request)
            .await
            .map_err(|err| match err {
                ProviderError::Unknown(_) => PaymentError::ProviderUnavailable(err),
                ProviderError::Refused { .. } => PaymentError::ProviderRefused(err),
            })?;
        match &outcome {
            ChargeOutcome::Succeeded { charge_id } => {
                payment.status = PaymentStatus::Succeeded;
                payment.provider_charge = Some(charge_id.clone());
            }
            ChargeOutcome::Declined { charge_id, code } => {
                payment.status = PaymentStatus::Failed;
                payment.provider_charge = Some(charge_id.clone());
                payment.failure_code = Some(code.clone());
            }
        }
        Ok((payment, outcome))
    }

    /// The same payment without an idempotency key: the benchmark's baseline
    /// (`PAYMENTS_IDEMPOTENCY=off`), which measures what the key costs. A retry is a second
    /// payment, and a crash between the steps leaves a payment pending for ever.
    #[cfg(feature = "bench")]
    pub(crate) async fn create_without_key(
        &self,
        client: ClientId,
        request: PaymentRequest,
    ) -> Result<Answer, PaymentError> {
        let payment = self.new_payment(client, request);
        self.store.insert_payment(&payment).await?;
        let (payment, outcome) = self.charge(payment).await?;
        let response = render(&payment);
        let event = event(&payment, &self.topic, self.clock.now());
        self.store
            .complete_payment(&finish(&payment, &outcome, &response, &event))
            .await?;
        self.finished.notify_one();
        Ok(answer(response, false))
    }

    pub async fn payment(&self, client: ClientId, id: PaymentId) -> Result<Payment, PaymentError> {
        // Another client's payment is "not found", not "forbidden": its existence is not theirs
        // to learn.
        self.store
            .payment(id)
            .await?
            .filter(|payment| payment.client == client)
            .ok_or(PaymentError::NotFound)
    }

    pub async fn payments(
        &self,
        client: ClientId,
        limit: u32,
        before: Option<PaymentId>,
    ) -> Result<Vec<Payment>, PaymentError> {
        Ok(self.store.payments(client, limit, before).await?)
    }

    /// One pass of the completer: drives every abandoned key (unfinished, not run for the grace
    /// period, lock free or stale) to its end. Returns how many it finished.
    pub async fn complete_abandoned(&self) -> Result<usize, PaymentError> {
        let mut finished = 0;
        loop {
            let now = self.clock.now();
            let Some((record, lock)) = self
                .store
                .lock_abandoned(
                    now - self.timing.completer_grace,
                    now - self.timing.lock_timeout,
                    now,
                )
                .await?
            else {
                return Ok(finished);
            };
            let key = record.key.clone();
            match self.drive(record, lock).await {
                Ok(_) => {
                    finished += 1;
                    metrics::counter!("payments_recoveries_total").increment(1);
                    tracing::info!(key, "completer finished an abandoned payment");
                }
                // The provider is still down: stop this pass, the key waits for the next one.
                Err(err) => {
                    tracing::warn!(key, error = %err, "completer could not finish a payment");
                    return Ok(finished);
                }
            }
        }
    }

    /// One pass of the reaper: deletes keys past their retention. Payments stay.
    pub async fn reap_expired_keys(&self) -> Result<u64, PaymentError> {
        let before = self.clock.now() - self.timing.retention;
        Ok(platform::db::delete_in_batches(1000, |limit| {
            self.store.delete_expired_keys(before, limit)
        })
        .await?)
    }

    /// Runs the completer and the reaper every `interval` until `stop`.
    pub async fn run_background(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(err) = self.complete_abandoned().await {
                tracing::warn!(error = %err, "completer pass failed");
            }
            if let Err(err) = self.reap_expired_keys().await {
                tracing::warn!(error = %err, "reaper pass failed");
            }
        }
    }
}

/// The `outcome` label of `payments_requests_total`: `processed` (the request did the work: a
/// new payment, or one resumed), `replayed` (a finished key's stored answer), `key_reused` (422),
/// `in_flight` (409: another request holds the key), `provider_unavailable` (502),
/// `database_unavailable` (503), `failed` (500).
fn outcome(result: &Result<Answer, PaymentError>) -> &'static str {
    match result {
        Ok(Answer { replayed: true, .. }) => "replayed",
        Ok(_) => "processed",
        Err(PaymentError::KeyReused) => "key_reused",
        Err(PaymentError::InFlight { .. } | PaymentError::Store(StoreError::LockLost)) => {
            "in_flight"
        }
        Err(PaymentError::ProviderUnavailable(_)) => "provider_unavailable",
        Err(PaymentError::Store(err)) if err.is_unreachable() => "database_unavailable",
        Err(_) => "failed",
    }
}

fn finish<'a>(
    payment: &'a Payment,
    outcome: &'a ChargeOutcome,
    response: &'a StoredResponse,
    event: &'a OutboxEvent,
) -> Finish<'a> {
    let (provider_charge, failure_code) = match outcome {
        ChargeOutcome::Succeeded { charge_id } => (charge_id.as_str(), None),
        ChargeOutcome::Declined { charge_id, code } => (charge_id.as_str(), Some(code.as_str())),
    };
    Finish {
        payment: payment.id,
        status: payment.status,
        provider_charge,
        failure_code,
        response,
        event,
    }
}

fn answer(response: StoredResponse, replayed: bool) -> Answer {
    Answer {
        status: StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body: response.body,
        replayed,
    }
}

/// The answer a finished payment gets, and every replay after it.
fn render(payment: &Payment) -> StoredResponse {
    let view = PaymentView::from(payment);
    match payment.status {
        PaymentStatus::Failed => {
            let code = payment.failure_code.as_deref().unwrap_or("declined");
            let body = Declined {
                problem: Problem::new(
                    StatusCode::PAYMENT_REQUIRED,
                    "card-declined",
                    "Card declined",
                )
                .with_detail(format!("The card was declined ({code}).")),
                decline_code: code,
                payment: view,
            };
            StoredResponse {
                status: StatusCode::PAYMENT_REQUIRED.as_u16(),
                body: serde_json::to_vec(&body).expect("a decline serialises"),
            }
        }
        PaymentStatus::Succeeded | PaymentStatus::Pending => StoredResponse {
            status: StatusCode::CREATED.as_u16(),
            body: serde_json::to_vec(&view).expect("a payment serialises"),
        },
    }
}

/// The `payment.succeeded` or `payment.failed` event of a finished payment.
fn event(payment: &Payment, topic: &str, now: OffsetDateTime) -> OutboxEvent {
    let event_type = match payment.status {
        PaymentStatus::Failed => "payment.failed",
        _ => "payment.succeeded",
    };
    let event_id = Uuid::now_v7();
    let payload = serde_json::json!({
        "id": event_id,
        "type": event_type,
        "created_at": now.format(&Rfc3339).expect("now formats"),
        "client_id": payment.client.0,
        "payment": PaymentView::from(payment),
    });
    OutboxEvent {
        event_id,
        topic: topic.to_owned(),
        key: payment.id.to_string(),
        event_type: event_type.to_owned(),
        payload: serde_json::to_vec(&payload).expect("an event serialises"),
        created_at: now,
    }
}
