//! Duplicates and races that at-least-once topics and group rebalances produce, and providers
//! that answer strangely: none of them may lose a notification or make an attempt twice.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::SeqCst},
    },
    time::Duration,
};

use async_trait::async_trait;
use notifier::{
    Settings,
    domain::{
        Channel, DeliveryStatus, Notification, NotificationRequest, Priority, Route, User,
        UserDetails, UserId, address::AddressPolicy,
    },
    messages::{Job, Topology},
    pipeline::{self, Context, router},
    providers::{
        Providers,
        email::EmailSender,
        phone::{client::ProviderClient, simulator::Faults},
        webhook::WebhookSender,
    },
    service::Notifier,
    store::{
        self, Attempted, Claim, Claimed, DeadLetter, Decision, Inserted, NotificationRecord,
        NotificationStore, StoreError, Work,
    },
};
use platform::{
    clock::SystemClock,
    fault::FaultSwitch,
    outbox::OutboxEvent,
    testing::{TestBackends, TestTopics},
    topic::{Delivery, Message},
};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::helpers::{GUARD, TestApp, outcomes, statuses};

fn sms(name: &str) -> serde_json::Value {
    json!({"user_id": "grace", "template": "welcome", "data": {"name": name}, "channels": ["sms"]})
}

#[tokio::test]
async fn a_duplicate_job_does_not_make_a_second_attempt() {
    // One retry, 2 s after the first failure: the duplicate arrives well inside that.
    let app = TestApp::running_with(|settings| {
        settings.pipeline.retry_delays = vec![Duration::from_secs(2)];
    })
    .await;
    app.grace().await;
    app.simulator().set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let id = app.accepted(sms("G")).await;
    app.wait_for(&id, "the first attempt to fail", |record| {
        outcomes(record, "sms") == ["retry"]
    })
    .await;

    // What a relay publishing twice or a router replaying would put on the topic.
    let duplicate = Job::first(id.parse().unwrap(), Channel::Sms, 0);
    let topic = Topology::new(&app.settings.pipeline.topic_prefix).channel(Channel::Sms);
    app.topics
        .producer()
        .publish(Message::new(
            topic,
            "grace",
            serde_json::to_vec(&duplicate).unwrap(),
        ))
        .await
        .unwrap();
    let record = app.wait_until_settled(&id).await;

    // The first attempt and its one retry; the duplicate found attempt 0 taken.
    assert_eq!(outcomes(&record, "sms"), ["retry", "failed"]);
    let letters = app.get("/v1/dlq").await.json();
    assert_eq!(letters["data"][0]["attempts"], 2);
}

#[tokio::test]
async fn a_huge_retry_after_is_capped_and_the_channel_keeps_delivering() {
    let app = TestApp::running().await;
    app.grace().await;
    app.simulator().set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: u64::MAX,
        ..Faults::default()
    });
    let first = app.accepted(sms("first")).await;
    app.wait_for(&first, "a 429", |record| {
        outcomes(record, "sms").contains(&"retry".to_owned())
    })
    .await;
    app.simulator().set_faults(Faults::default());

    let second = app.accepted(sms("second")).await;

    assert_eq!(
        statuses(&app.wait_until_settled(&second).await)["sms"],
        "delivered"
    );
    // Retried after the longest delay (200 ms in tests), not in 584 billion years.
    assert_eq!(
        statuses(&app.wait_until_settled(&first).await)["sms"],
        "delivered"
    );
}

#[tokio::test]
async fn a_long_retry_after_does_not_hold_up_retries_behind_it() {
    let app = TestApp::running_with(|settings| {
        settings.pipeline.retry_delays = vec![Duration::from_millis(100), Duration::from_secs(30)];
    })
    .await;
    app.grace().await;
    app.simulator().set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: 20,
        ..Faults::default()
    });
    let first = app.accepted(sms("first")).await;
    app.wait_for(&first, "a 429", |record| {
        outcomes(record, "sms") == ["retry"]
    })
    .await;
    app.simulator().set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let second = app.accepted(sms("second")).await;
    app.wait_for(&second, "a 503", |record| {
        outcomes(record, "sms") == ["retry"]
    })
    .await;
    app.simulator().set_faults(Faults::default());

    // The 20 s wait went to the 30 s topic; the 100 ms retry is not behind it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let record = app.get(&format!("/v1/notifications/{second}")).await.json();
        if statuses(&record)["sms"] == "delivered" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a 100 ms retry waits behind a 20 s one: {record:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A store through which one router's decision lands just before another's: the first router
/// (presumed dead and replaced) queued the delivery, then died before publishing.
struct QueuedByAnother(Arc<dyn NotificationStore>, AtomicBool);

#[async_trait]
impl NotificationStore for QueuedByAnother {
    async fn route(
        &self,
        decisions: &[Decision],
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError> {
        if !self.1.swap(true, SeqCst) {
            let queued: Vec<Decision> = decisions
                .iter()
                .map(|decision| Decision {
                    route: Route::Queue,
                    ..decision.clone()
                })
                .collect();
            assert!(
                self.0
                    .route(&queued, now)
                    .await?
                    .iter()
                    .all(|&applied| applied)
            );
        }
        self.0.route(decisions, now).await
    }
    async fn put_user(&self, user: &User, now: OffsetDateTime) -> Result<(), StoreError> {
        self.0.put_user(user, now).await
    }
    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.0.user(id).await
    }
    async fn insert_notification(
        &self,
        notification: &Notification,
        intake: &OutboxEvent,
    ) -> Result<Inserted, StoreError> {
        self.0.insert_notification(notification, intake).await
    }
    async fn notification(&self, id: Uuid) -> Result<Option<NotificationRecord>, StoreError> {
        self.0.notification(id).await
    }
    async fn work(&self, ids: &[Uuid]) -> Result<Vec<Work>, StoreError> {
        self.0.work(ids).await
    }
    async fn queued_since(
        &self,
        users: &[String],
        channels: &[Channel],
        since: OffsetDateTime,
        except: &[Uuid],
    ) -> Result<HashMap<(String, Channel), u32>, StoreError> {
        self.0.queued_since(users, channels, since, except).await
    }
    async fn claim(
        &self,
        claims: &[Claim],
        now: OffsetDateTime,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.0.claim(claims, now).await
    }
    async fn record(&self, attempts: &[Attempted], now: OffsetDateTime) -> Result<(), StoreError> {
        self.0.record(attempts, now).await
    }
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        self.0.dead_letters(limit).await
    }
    async fn dead_letter(&self, id: Uuid) -> Result<Option<DeadLetter>, StoreError> {
        self.0.dead_letter(id).await
    }
    async fn redrive(
        &self,
        id: Uuid,
        job: &OutboxEvent,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.0.redrive(id, job, now).await
    }
}

#[tokio::test]
async fn a_router_that_loses_the_routing_race_still_publishes_the_job() {
    let backends = TestBackends::from_env().await;
    backends.database.migrate(store::MIGRATIONS).await.unwrap();
    let test_topics = TestTopics::from_env().await;
    let topics = test_topics.topics.clone();
    let settings = Settings::for_tests();
    pipeline::ensure_topics(&*topics, &settings.pipeline)
        .await
        .unwrap();
    let inner = store::for_database(
        &backends.database,
        FaultSwitch::new(notifier::SYSTEM, "database"),
    );
    let topology = Topology::new(&settings.pipeline.topic_prefix);
    let service = Notifier::new(
        inner.clone(),
        store::callers(&backends.database),
        Arc::new(SystemClock),
        topology.clone(),
        Arc::new(Notify::new()),
        AddressPolicy::AllowPrivate,
    );
    let grace = UserDetails {
        phone: Some("+14155550100".into()),
        ..Default::default()
    };
    service
        .put_user(UserId::parse("grace").unwrap(), grace)
        .await
        .unwrap();
    let body = NotificationRequest {
        user_id: "grace".into(),
        template: "welcome".into(),
        data: json!({"name": "G"}).as_object().unwrap().clone(),
        channels: Some(vec!["sms".into()]),
        priority: Priority::Normal,
        idempotency_key: None,
    };
    let id = service.accept(body).await.unwrap().id;
    let nowhere = Duration::from_secs(1);
    let context = Context {
        store: Arc::new(QueuedByAnother(inner.clone(), AtomicBool::new(false))),
        providers: Providers {
            email: EmailSender::new("smtp://127.0.0.1:1", "n@example.com", nowhere).unwrap(),
            phone: ProviderClient::new("http://127.0.0.1:1", nowhere),
            webhook: WebhookSender::new(b"s".to_vec(), AddressPolicy::AllowPrivate),
        },
        producer: topics.producer(),
        clock: Arc::new(SystemClock),
        topology: topology.clone(),
        settings: settings.pipeline.clone(),
        wake: Arc::new(Notify::new()),
    };
    let intake = Delivery {
        topic: topology.intake(),
        partition: 0,
        offset: 0,
        key: b"grace".to_vec(),
        payload: serde_json::to_vec(&json!({"notification_id": id})).unwrap(),
        headers: vec![],
    };

    router::handle(&context, &[intake]).await.unwrap();

    let work = inner.work(&[id]).await.unwrap().pop().unwrap();
    assert_eq!(work.status(Channel::Sms), Some(DeliveryStatus::Queued));
    let jobs = topics
        .subscribe("test-reader", &[&topology.channel(Channel::Sms)])
        .await
        .unwrap();
    let job = tokio::time::timeout(GUARD, jobs.recv()).await;
    assert!(job.is_ok(), "queued, intake handled, and no job anywhere");
}
