//! A fresh payments service per test, on its own database, with its own provider simulator.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use idempotency_demo::{
    Application, Settings,
    domain::{ClientId, Fingerprint, IdempotencyKey, Payment, PaymentId, PaymentRequest},
    provider::{Faults, ProviderClient, Simulator, simulator::Charge},
    service::{Payments, Timing},
    store::{self, Begin, BeginAt, Finish, KeyRecord, Lock, PaymentStore, StoreError},
};
pub use platform::testing::http::{TestResponse, send_to};
use platform::{
    auth::AdminToken,
    clock::ManualClock,
    outbox::OutboxEvent,
    testing::{TestBackends, TestTopics},
    topic::{Consumer, Delivery, Topics},
};
use serde_json::{Value, json};
use time::OffsetDateTime;

pub struct TestApp {
    pub router: Router,
    pub app: Application,
    pub clock: ManualClock,
    pub backends: TestBackends,
    /// Kafka when `KAFKA_BROKERS` is set, an embedded transport of this test's own otherwise.
    pub topics: Arc<dyn Topics>,
    /// Keeps the embedded transport's directory.
    _test_topics: TestTopics,
    pub settings: Settings,
    /// A client's API key, created for this test.
    pub key: String,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let backends = TestBackends::from_env().await;
        let mut settings = Settings::for_tests();
        settings.admin_token = Some(AdminToken::generate());
        configure(&mut settings);
        let clock = ManualClock::starting_now();
        let test_topics = TestTopics::from_env().await;
        let topics = test_topics.topics.clone();
        let app = Application::build_with(
            settings.clone(),
            backends.database.clone(),
            topics.clone(),
            Arc::new(clock.clone()),
        )
        .await
        .unwrap_or_else(|err| panic!("building on {}: {err:?}", backends.describe()));
        let mut test_app = Self {
            router: app.router(),
            app,
            clock,
            backends,
            topics,
            _test_topics: test_topics,
            settings,
            key: String::new(),
        };
        test_app.key = test_app.new_client("test").await;
        test_app
    }

    /// Another instance of the service on the same database and the same provider, as after a
    /// restart or on another machine.
    pub async fn another_instance(&self) -> Application {
        let (database, _cache) = self.backends.another_instance().await;
        let mut settings = self.settings.clone();
        settings.provider = idempotency_demo::settings::ProviderSetting::Url(self.provider_url());
        Application::build_with(
            settings,
            database,
            self.topics.clone(),
            Arc::new(self.clock.clone()),
        )
        .await
        .unwrap()
    }

    pub fn simulator(&self) -> &Arc<Simulator> {
        &self
            .app
            .provider()
            .expect("tests run the simulator")
            .simulator
    }

    pub fn provider_url(&self) -> String {
        format!("http://{}", self.app.provider().unwrap().addr)
    }

    pub fn set_faults(&self, faults: Faults) {
        self.simulator().set_faults(faults);
    }

    pub fn charges(&self) -> Vec<Charge> {
        self.simulator().charges()
    }

    pub fn payments(&self) -> &Arc<Payments> {
        self.app.payments()
    }

    pub async fn new_client(&self, name: &str) -> String {
        let (_, key) = self.payments().create_client(name).await.unwrap();
        key.expose().to_owned()
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send_to(&self.router, request).await
    }

    /// `POST /v1/payments` with this test's client and `key` as the idempotency key.
    pub async fn pay(&self, idempotency_key: &str, body: Value) -> TestResponse {
        self.pay_as(&self.key, Some(idempotency_key), body.to_string())
            .await
    }

    pub async fn pay_as(
        &self,
        client_key: &str,
        idempotency_key: Option<&str>,
        body: String,
    ) -> TestResponse {
        send_to(
            &self.router,
            payment_request(client_key, idempotency_key, body),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.get_as(&self.key, path).await
    }

    pub async fn get_as(&self, client_key: &str, path: &str) -> TestResponse {
        let request = Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {client_key}"))
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }

    /// Every payment of this test's client, newest first.
    pub async fn all_payments(&self) -> Vec<Value> {
        let response = self.get("/v1/payments?limit=100").await;
        assert_eq!(response.status, StatusCode::OK);
        response.json()["data"].as_array().unwrap().clone()
    }

    pub async fn unpublished_events(&self) -> Vec<OutboxEvent> {
        self.app.relay().unpublished(1000).await.unwrap()
    }

    /// A consumer of the events topic in a group of its own, and the first `count` records it
    /// receives.
    pub async fn consume(&self, count: usize) -> (Box<dyn Consumer>, Vec<Delivery>) {
        let group = format!("test-{}", uuid::Uuid::new_v4().simple());
        let consumer = self
            .topics
            .subscribe(&group, &[&self.settings.events_topic])
            .await
            .unwrap();
        let mut deliveries = Vec::new();
        while deliveries.len() < count {
            // A guard against a hang, not a timing assertion: Kafka's group join takes seconds.
            let delivery = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
                .await
                .expect("the events arrive")
                .unwrap();
            deliveries.push(delivery);
        }
        (consumer, deliveries)
    }

    /// Turns the service's fault switch `name` unreachable or back, over HTTP with the admin
    /// token, as the console does.
    pub async fn switch(&self, name: &str, unreachable: bool) {
        let token = self
            .settings
            .admin_token
            .as_ref()
            .expect("tests have a token");
        let request = Request::put(format!("/admin/faults/{name}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", token.expose()))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({ "unreachable": unreachable }).to_string(),
            ))
            .unwrap();
        let response = self.send(request).await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        assert_eq!(response.json()["unreachable"], unreachable);
    }
}

/// `name{…labels}` summed over the series whose labels include each of `labels`, as the
/// process's recorder renders it now.
pub fn counter(name: &str, labels: &[&str]) -> f64 {
    platform::metrics::handle()
        .render()
        .lines()
        .filter(|line| {
            line.starts_with(&format!("{name} ")) || line.starts_with(&format!("{name}{{"))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn payment_request(
    client_key: &str,
    idempotency_key: Option<&str>,
    body: String,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/v1/payments")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {client_key}"));
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    request.body(Body::from(body)).unwrap()
}

/// A payment of 20.00 USD on a card that succeeds.
pub fn visa(amount: u64) -> Value {
    json!({ "amount": amount, "currency": "usd", "source": "tok_visa" })
}

/// The phases a [`CrashingStore`] can die after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Begin,
    CreatePayment,
    Finish,
}

/// A store that fails at a chosen phase, in one of two ways:
/// - [`CrashingStore::new`]: the process "dies" right after the phase commits: that call and
///   every call after it fail, the unlock included, so the key stays exactly as the phase left it;
/// - [`CrashingStore::failing_once`]: the phase fails once without committing (a dropped
///   connection, say), and the process lives on: the unlock and everything after work.
pub struct CrashingStore {
    inner: Arc<dyn PaymentStore>,
    crash_after: Phase,
    crashed: AtomicBool,
    fail_once: Option<AtomicBool>,
    pub seen: Mutex<Vec<Phase>>,
}

impl CrashingStore {
    pub fn new(inner: Arc<dyn PaymentStore>, crash_after: Phase) -> Arc<Self> {
        Arc::new(Self {
            inner,
            crash_after,
            crashed: AtomicBool::new(false),
            fail_once: None,
            seen: Mutex::default(),
        })
    }

    pub fn failing_once(inner: Arc<dyn PaymentStore>, phase: Phase) -> Arc<Self> {
        Arc::new(Self {
            inner,
            crash_after: phase,
            crashed: AtomicBool::new(false),
            fail_once: Some(AtomicBool::new(true)),
            seen: Mutex::default(),
        })
    }

    /// For a store failing once: fails the first call of `phase`, before it reaches the database.
    fn transient(&self, phase: Phase) -> Result<(), StoreError> {
        match &self.fail_once {
            Some(armed) if phase == self.crash_after && armed.swap(false, Ordering::SeqCst) => Err(
                StoreError::Corrupt(format!("{phase:?} failed before committing")),
            ),
            _ => Ok(()),
        }
    }

    fn dead(&self) -> Result<(), StoreError> {
        if self.crashed.load(Ordering::SeqCst) {
            Err(StoreError::Corrupt("the process is dead".into()))
        } else {
            Ok(())
        }
    }

    fn after<T>(&self, phase: Phase, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let value = result?;
        self.seen.lock().unwrap().push(phase);
        if phase == self.crash_after && self.fail_once.is_none() {
            self.crashed.store(true, Ordering::SeqCst);
            return Err(StoreError::Corrupt(format!("crashed after {phase:?}")));
        }
        Ok(value)
    }
}

#[async_trait]
impl PaymentStore for CrashingStore {
    async fn begin(
        &self,
        client: ClientId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        request: &PaymentRequest,
        at: BeginAt,
    ) -> Result<Begin, StoreError> {
        self.dead()?;
        self.transient(Phase::Begin)?;
        let result = self
            .inner
            .begin(client, key, fingerprint, request, at)
            .await;
        self.after(Phase::Begin, result)
    }

    async fn create_payment(&self, lock: Lock, payment: &Payment) -> Result<(), StoreError> {
        self.dead()?;
        self.transient(Phase::CreatePayment)?;
        let result = self.inner.create_payment(lock, payment).await;
        self.after(Phase::CreatePayment, result)
    }

    async fn finish(&self, lock: Lock, finish: &Finish<'_>) -> Result<(), StoreError> {
        self.dead()?;
        self.transient(Phase::Finish)?;
        let result = self.inner.finish(lock, finish).await;
        self.after(Phase::Finish, result)
    }

    #[cfg(feature = "bench")]
    async fn insert_payment(&self, payment: &Payment) -> Result<(), StoreError> {
        self.dead()?;
        self.inner.insert_payment(payment).await
    }

    #[cfg(feature = "bench")]
    async fn complete_payment(&self, finish: &Finish<'_>) -> Result<(), StoreError> {
        self.dead()?;
        self.inner.complete_payment(finish).await
    }

    async fn unlock(&self, lock: Lock, now: OffsetDateTime) -> Result<(), StoreError> {
        self.dead()?;
        self.inner.unlock(lock, now).await
    }

    async fn lock_abandoned(
        &self,
        idle_before: OffsetDateTime,
        stale_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<(KeyRecord, Lock)>, StoreError> {
        self.dead()?;
        self.inner
            .lock_abandoned(idle_before, stale_before, now)
            .await
    }

    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        self.dead()?;
        self.inner.payment(id).await
    }

    async fn payments(
        &self,
        client: ClientId,
        limit: u32,
        before: Option<PaymentId>,
    ) -> Result<Vec<Payment>, StoreError> {
        self.inner.payments(client, limit, before).await
    }

    async fn delete_expired_keys(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.inner.delete_expired_keys(before, limit).await
    }
}

impl TestApp {
    /// A `Payments` over this test's database and provider whose process dies after `phase`.
    pub fn crashing_instance(&self, phase: Phase) -> (Arc<Payments>, Arc<CrashingStore>) {
        let store = CrashingStore::new(store::for_database(&self.backends.database), phase);
        (self.payments_over(store.clone()), store)
    }

    /// A `Payments` over this test's database and provider whose `phase` fails once.
    pub fn flaky_instance(&self, phase: Phase) -> Arc<Payments> {
        self.payments_over(CrashingStore::failing_once(
            store::for_database(&self.backends.database),
            phase,
        ))
    }

    fn payments_over(&self, store: Arc<CrashingStore>) -> Arc<Payments> {
        Arc::new(Payments::new(
            store,
            store::clients(&self.backends.database),
            ProviderClient::new(&self.provider_url(), Duration::from_secs(5)),
            Arc::new(self.clock.clone()),
            Timing::default(),
        ))
    }

    /// This test's client, as the store knows it.
    pub async fn client_id(&self) -> ClientId {
        let key = platform::auth::ApiKey::parse(&self.key).unwrap();
        self.payments().authenticate(&key).await.unwrap().id
    }
}
