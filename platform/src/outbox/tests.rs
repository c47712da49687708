//! The relay against the database `DATABASE_URL` selects and the topics `KAFKA_BROKERS` selects
//! (SQLite and a fresh embedded transport when unset), on a table made from [`POSTGRES_TABLE`] or
//! [`SQLITE_TABLE`], the DDL systems copy.
//!
//! The relays publish through a [`Recorder`] in front of the real producer, so a test counts
//! exactly what each relay had acknowledged, without waiting for a consumer group to form. One
//! test also reads the topic, to see the headers arrive.

use std::{collections::HashMap, sync::Mutex};

use rdkafka::{error::KafkaError, types::RDKafkaErrorCode};
use tokio::sync::watch;

use super::*;
use crate::{
    clock::ManualClock,
    testing::{TestBackends, TestTopics, unique_topic},
    topic::Topics,
};

/// A guard against a hang, not a timing assertion: a Kafka consumer group takes seconds to form.
const GUARD: Duration = Duration::from_secs(60);

struct Fixture {
    backends: TestBackends,
    topics: Arc<dyn Topics>,
    topic: String,
    clock: ManualClock,
    recorder: Arc<Recorder>,
    wake: Arc<Notify>,
    /// Holds the embedded topics file's directory.
    _test_topics: TestTopics,
}

impl Fixture {
    /// A fresh database with the `outbox` table, and a fresh topic.
    async fn new() -> Self {
        let backends = TestBackends::from_env().await;
        match &backends.database {
            Database::Postgres(pool) => sqlx::raw_sql(POSTGRES_TABLE).execute(pool).await.map(drop),
            Database::Sqlite(pool) => sqlx::raw_sql(SQLITE_TABLE).execute(pool).await.map(drop),
        }
        .expect("creating the outbox table from its documented DDL");
        let test_topics = TestTopics::from_env().await;
        let topics = test_topics.topics.clone();
        let topic = unique_topic();
        topics.ensure_topic(&topic, 3).await.unwrap();
        let recorder = Recorder::new(topics.producer(), Broker::Up);
        Self {
            backends,
            topics,
            topic,
            clock: ManualClock::starting_now(),
            recorder,
            wake: Arc::default(),
            _test_topics: test_topics,
        }
    }

    /// A relay on this test's database and clock, publishing through the recorder.
    fn relay(&self) -> Relay {
        self.relay_on(self.backends.database.clone(), self.recorder.clone())
    }

    fn relay_on(&self, database: Database, producer: Arc<dyn Producer>) -> Relay {
        Relay::new(
            "test",
            database,
            producer,
            Arc::new(self.clock.clone()),
            self.wake.clone(),
        )
    }

    /// `count` events written in one transaction, as a system writes them beside its change.
    async fn write_events(&self, count: usize) -> Vec<OutboxEvent> {
        let events: Vec<_> = (0..count)
            .map(|i| self.event(&format!("key-{i}")))
            .collect();
        match &self.backends.database {
            Database::Postgres(pool) => {
                let mut tx = pool.begin().await.unwrap();
                for event in &events {
                    insert_postgres(&mut tx, event).await.unwrap();
                }
                tx.commit().await.unwrap();
            }
            Database::Sqlite(pool) => {
                let mut tx = pool.begin().await.unwrap();
                insert_all_sqlite(&mut tx, &events).await.unwrap();
                tx.commit().await.unwrap();
            }
        }
        events
    }

    fn event(&self, key: &str) -> OutboxEvent {
        let event_id = Uuid::now_v7();
        OutboxEvent {
            event_id,
            topic: self.topic.clone(),
            key: key.to_owned(),
            event_type: "thing.happened".to_owned(),
            payload: format!(r#"{{"id":"{event_id}"}}"#).into_bytes(),
            created_at: self.clock.now(),
        }
    }

    async fn unpublished(&self) -> Vec<OutboxEvent> {
        self.relay().unpublished(10_000).await.unwrap()
    }

    async fn execute(&self, statement: &'static str) {
        match &self.backends.database {
            Database::Postgres(pool) => sqlx::query(statement).execute(pool).await.map(drop),
            Database::Sqlite(pool) => sqlx::query(statement).execute(pool).await.map(drop),
        }
        .unwrap()
    }

    /// Every row in the table, published or not.
    async fn rows(&self) -> i64 {
        let count = "SELECT count(*) FROM outbox";
        match &self.backends.database {
            Database::Postgres(pool) => sqlx::query_scalar(count).fetch_one(pool).await,
            Database::Sqlite(pool) => sqlx::query_scalar(count).fetch_one(pool).await,
        }
        .unwrap()
    }
}

/// How the broker behind a [`Recorder`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broker {
    Up,
    /// Refuses every publish: nothing is written.
    Down,
    /// Writes every message, but the acknowledgement never reaches the relay.
    LosesAcks,
    /// Holds each batch until [`Recorder::release`], as a slow broker would.
    Holds,
}

/// A producer in front of the real one that records what was written, by event id.
struct Recorder {
    inner: Arc<dyn Producer>,
    broker: Broker,
    written: Mutex<Vec<Message>>,
    count: watch::Sender<usize>,
    /// For [`Broker::Holds`]: notified when a batch arrives, and waited on before writing it.
    holding: Notify,
    released: Notify,
}

impl Recorder {
    fn new(inner: Arc<dyn Producer>, broker: Broker) -> Arc<Self> {
        Arc::new(Self {
            inner,
            broker,
            written: Mutex::default(),
            count: watch::Sender::new(0),
            holding: Notify::new(),
            released: Notify::new(),
        })
    }

    /// Waits until a batch is being held.
    async fn holding(&self) {
        tokio::time::timeout(GUARD, self.holding.notified())
            .await
            .expect("a batch reaches the broker");
    }

    fn release(&self) {
        self.released.notify_one();
    }

    fn written(&self) -> Vec<Message> {
        self.written.lock().unwrap().clone()
    }

    /// How many times each event id was written.
    fn copies_by_event(&self) -> HashMap<Vec<u8>, usize> {
        let mut copies = HashMap::new();
        for message in self.written() {
            let id = header(&message, EVENT_ID_HEADER).unwrap().to_vec();
            *copies.entry(id).or_default() += 1;
        }
        copies
    }

    async fn wait_for(&self, count: usize) {
        let mut written = self.count.subscribe();
        tokio::time::timeout(GUARD, written.wait_for(|&n| n >= count))
            .await
            .unwrap_or_else(|_| panic!("{count} messages were not published within {GUARD:?}"))
            .unwrap();
    }
}

#[async_trait]
impl Producer for Recorder {
    async fn publish(&self, message: Message) -> Result<(), TopicError> {
        self.publish_all(vec![message]).await
    }

    async fn publish_all(&self, messages: Vec<Message>) -> Result<(), TopicError> {
        if self.broker == Broker::Down {
            return Err(KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown).into());
        }
        if self.broker == Broker::Holds {
            self.holding.notify_one();
            self.released.notified().await;
        }
        for message in messages {
            self.inner.publish(message.clone()).await?;
            self.written.lock().unwrap().push(message);
            self.count.send_modify(|n| *n += 1);
        }
        if self.broker == Broker::LosesAcks {
            return Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut).into());
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "recorder"
    }
}

fn header<'a>(message: &'a Message, name: &str) -> Option<&'a [u8]> {
    message
        .headers
        .iter()
        .find(|(header, _)| header == name)
        .map(|(_, value)| value.as_slice())
}

fn event_ids(events: &[OutboxEvent]) -> HashMap<Vec<u8>, usize> {
    events
        .iter()
        .map(|event| (event.event_id.to_string().into_bytes(), 1))
        .collect()
}

#[tokio::test]
async fn every_row_is_published_once_with_its_key_and_event_headers() {
    let fixture = Fixture::new().await;
    let events = fixture.write_events(3).await;
    let relay = fixture.relay();

    let first = relay.relay_once().await.unwrap();
    let second = relay.relay_once().await.unwrap();

    assert_eq!((first, second), (3, 0));
    assert!(fixture.unpublished().await.is_empty());
    let expected: Vec<Message> = events.into_iter().map(OutboxEvent::into_message).collect();
    assert_eq!(fixture.recorder.written(), expected);
    let consumer = fixture
        .topics
        .subscribe(
            &format!("test-{}", Uuid::new_v4().simple()),
            &[&fixture.topic],
        )
        .await
        .unwrap();
    for _ in 0..expected.len() {
        let delivery = tokio::time::timeout(GUARD, consumer.recv())
            .await
            .expect("the events arrive")
            .unwrap();
        let sent = expected
            .iter()
            .find(|m| m.key == delivery.key)
            .expect("a published key");
        assert_eq!(delivery.payload, sent.payload);
        assert_eq!(
            delivery.header(EVENT_ID_HEADER),
            header(sent, EVENT_ID_HEADER)
        );
        assert_eq!(
            delivery.header(EVENT_TYPE_HEADER),
            Some(&b"thing.happened"[..])
        );
    }
}

#[tokio::test]
async fn published_rows_are_deleted_after_the_retention_and_unpublished_ones_never() {
    let fixture = Fixture::new().await;
    let relay = fixture.relay();
    let events = fixture.write_events(4).await;
    assert_eq!(relay.relay_once().await.unwrap(), 4);
    // The oldest row as if it had never been published (a broker that refused it for a day): it
    // must outlive the retention, and must not stop the rows after it from going.
    fixture
        .execute("UPDATE outbox SET published_at = NULL WHERE id = (SELECT min(id) FROM outbox)")
        .await;

    fixture.clock.advance(RETENTION - Duration::from_secs(1));
    let early = relay.prune_once().await.unwrap();
    fixture.clock.advance(Duration::from_secs(2));
    // Written now, not published yet.
    let recent = fixture.write_events(1).await;
    let due = relay.prune_once().await.unwrap();

    assert_eq!(early, 0, "nothing was past the retention yet");
    assert_eq!(due, 3, "the published rows, once past it");
    assert_eq!(fixture.rows().await, 2);
    let left: Vec<Uuid> = (fixture.unpublished().await.iter())
        .map(|event| event.event_id)
        .collect();
    assert_eq!(left, [events[0].event_id, recent[0].event_id]);
}

#[tokio::test]
async fn payloads_of_any_bytes_are_published_as_written() {
    let fixture = Fixture::new().await;
    let mut event = fixture.event("bytes");
    event.payload = (0..=255).collect();
    match &fixture.backends.database {
        Database::Postgres(pool) => {
            insert_postgres(&mut pool.acquire().await.unwrap(), &event)
                .await
                .unwrap();
        }
        Database::Sqlite(pool) => {
            insert_sqlite(&mut pool.acquire().await.unwrap(), &event)
                .await
                .unwrap();
        }
    }

    assert_eq!(fixture.relay().relay_once().await.unwrap(), 1);

    assert_eq!(fixture.recorder.written(), [event.into_message()]);
}

#[tokio::test]
async fn a_row_below_ones_already_published_is_still_published() {
    let fixture = Fixture::new().await;
    let relay = fixture.relay();
    let late = fixture.event("late");
    let what = match &fixture.backends.database {
        Database::Postgres(pool) => {
            // Its transaction takes an id, then stays open while a later row commits and is
            // published.
            let mut open = pool.begin().await.unwrap();
            insert_postgres(&mut open, &late).await.unwrap();
            fixture.write_events(1).await;
            assert_eq!(relay.relay_once().await.unwrap(), 1);
            open.commit().await.unwrap();
            "a row whose transaction committed late"
        }
        // SQLite has one writer, so ids are assigned and committed in order; what a late commit
        // leaves behind is placed by hand: a row with an id below the published ones.
        Database::Sqlite(pool) => {
            fixture.write_events(1).await;
            assert_eq!(relay.relay_once().await.unwrap(), 1);
            sqlx::query(
                "INSERT INTO outbox (id, event_id, topic, message_key, event_type, payload, created_at) \
                 VALUES (-1, ?1, ?2, 'late', 'thing.happened', X'7b7d', 0)",
            )
            .bind(late.event_id.hyphenated())
            .bind(&fixture.topic)
            .execute(pool)
            .await
            .unwrap();
            "a row with an id below the published ones"
        }
    };

    let published = relay.relay_once().await.unwrap();

    assert_eq!(published, 1, "{what} was skipped");
    let last = fixture.recorder.written().pop().unwrap();
    assert_eq!(last.key, b"late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_racing_publish_each_row_exactly_once() {
    let fixture = Fixture::new().await;
    let events = fixture.write_events(5 * BATCH as usize / 2).await;
    let (database, _cache) = fixture.backends.another_instance().await;
    let relays = [
        fixture.relay(),
        fixture.relay_on(database, fixture.recorder.clone()),
    ];

    let racing = relays.map(|relay| {
        tokio::spawn(async move {
            let mut published = 0;
            loop {
                // Nothing left to claim: what remains is the other relay's batch in flight.
                match relay.relay_once().await.unwrap() {
                    0 => return published,
                    count => published += count,
                }
            }
        })
    });
    let mut published = 0;
    for relay in racing {
        published += relay.await.unwrap();
    }

    assert_eq!(published, events.len());
    assert_eq!(fixture.recorder.copies_by_event(), event_ids(&events));
    assert!(fixture.unpublished().await.is_empty());
}

#[tokio::test]
async fn a_batch_in_flight_is_not_claimed_by_another_relay() {
    let fixture = Fixture::new().await;
    let events = fixture.write_events(BATCH as usize + 50).await;
    let slow = Recorder::new(fixture.topics.producer(), Broker::Holds);
    let (database, _cache) = fixture.backends.another_instance().await;
    let first = fixture.relay_on(database, slow.clone());
    let in_flight = tokio::spawn(async move { first.relay_once().await });
    slow.holding().await;

    let other = fixture.relay();
    let while_in_flight = [
        other.relay_once().await.unwrap(),
        other.relay_once().await.unwrap(),
    ];
    slow.release();
    let first_batch = in_flight.await.unwrap().unwrap();

    assert_eq!(while_in_flight, [50, 0]);
    assert_eq!(first_batch, BATCH as usize);
    let mut copies = slow.copies_by_event();
    for (event, count) in fixture.recorder.copies_by_event() {
        *copies.entry(event).or_default() += count;
    }
    assert_eq!(copies, event_ids(&events));
}

#[tokio::test]
async fn a_refused_batch_is_released_and_published_by_the_next_pass() {
    let fixture = Fixture::new().await;
    let events = fixture.write_events(5).await;
    let failing = fixture.relay_on(
        fixture.backends.database.clone(),
        Recorder::new(fixture.topics.producer(), Broker::Down),
    );

    let refused = failing.relay_once().await;
    let next = fixture.relay().relay_once().await.unwrap();

    assert!(matches!(refused, Err(RelayError::Publish(_))));
    assert_eq!(next, events.len(), "released: no lease to wait out");
    assert_eq!(fixture.recorder.copies_by_event(), event_ids(&events));
}

#[tokio::test]
async fn a_batch_whose_acknowledgement_was_lost_is_published_again() {
    let fixture = Fixture::new().await;
    let events = fixture.write_events(5).await;
    let lost_acks = Recorder::new(fixture.topics.producer(), Broker::LosesAcks);
    let unlucky = fixture.relay_on(fixture.backends.database.clone(), lost_acks.clone());

    assert!(unlucky.relay_once().await.is_err());
    let again = fixture.relay().relay_once().await.unwrap();

    // At least once: each event went out twice, and consumers deduplicate by its event id.
    assert_eq!(again, events.len());
    assert_eq!(lost_acks.copies_by_event(), event_ids(&events));
    assert_eq!(fixture.recorder.copies_by_event(), event_ids(&events));
}

#[tokio::test]
async fn a_relay_that_dies_mid_batch_leaves_its_rows_to_their_lease() {
    let fixture = Fixture::new().await;
    let events = fixture.write_events(5).await;
    let slow = Recorder::new(fixture.topics.producer(), Broker::Holds);
    let dying = fixture.relay_on(fixture.backends.database.clone(), slow.clone());
    let in_flight = tokio::spawn(async move { dying.relay_once().await });
    slow.holding().await;

    in_flight.abort();
    let _ = in_flight.await;
    let while_leased = fixture.relay().relay_once().await.unwrap();
    fixture.clock.advance(LEASE + Duration::from_secs(1));
    let after_the_lease = fixture.relay().relay_once().await.unwrap();

    assert_eq!((while_leased, after_the_lease), (0, events.len()));
    assert_eq!(fixture.recorder.copies_by_event(), event_ids(&events));
}

/// `name{system="system"}` as the recorder renders it now.
fn gauge(name: &str, system: &str) -> Option<f64> {
    let series = format!(r#"{name}{{system="{system}"}} "#);
    crate::metrics::handle()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&series)?.parse().ok())
}

#[tokio::test]
async fn the_backlog_counts_the_rows_waiting_and_the_age_of_the_oldest_until_they_go() {
    crate::metrics::install();
    // A system name of this test's own: the recorder is the process's, shared by every test.
    let system = "outbox-backlog-test";
    let fixture = Fixture::new().await;
    let relay = Relay::new(
        system,
        fixture.backends.database.clone(),
        fixture.recorder.clone(),
        Arc::new(fixture.clock.clone()),
        fixture.wake.clone(),
    );
    let empty = relay.backlog().await.unwrap();
    fixture.write_events(3).await;
    fixture.clock.advance(Duration::from_secs(40));
    fixture.write_events(2).await;
    fixture.clock.advance(Duration::from_secs(2));

    let waiting = relay.backlog().await.unwrap();
    let gauges_while_waiting = (
        gauge("outbox_pending", system),
        gauge("outbox_oldest_seconds", system),
    );
    relay.relay_once().await.unwrap();
    let drained = relay.backlog().await.unwrap();

    let none = Backlog {
        pending: 0,
        oldest: Duration::ZERO,
    };
    assert_eq!(empty, none);
    assert_eq!(
        waiting,
        Backlog {
            pending: 5,
            oldest: Duration::from_secs(42)
        }
    );
    assert_eq!(gauges_while_waiting, (Some(5.0), Some(42.0)));
    assert_eq!(drained, none);
    assert_eq!(gauge("outbox_pending", system), Some(0.0));
    assert_eq!(gauge("outbox_oldest_seconds", system), Some(0.0));
}

#[tokio::test]
async fn a_database_switched_off_stops_the_relay_until_it_is_undone() {
    let fixture = Fixture::new().await;
    let events = fixture.write_events(3).await;
    let switch = FaultSwitch::new("test-system", "database");
    let relay = fixture.relay().with_database_switch(switch.clone());

    switch.set(crate::fault::Fault {
        latency_ms: 0,
        unreachable: true,
    });
    let while_off = relay.relay_once().await;
    let backlog_while_off = relay.backlog().await;
    switch.set(crate::fault::Fault::default());
    let after = relay.relay_once().await.unwrap();

    assert!(matches!(while_off, Err(RelayError::Fault(_))));
    assert!(matches!(backlog_while_off, Err(RelayError::Fault(_))));
    assert_eq!(after, events.len());
    assert_eq!(fixture.recorder.copies_by_event(), event_ids(&events));
}

#[tokio::test]
async fn a_running_relay_publishes_when_woken_and_stops_when_told() {
    let fixture = Fixture::new().await;
    fixture.write_events(1).await;
    let stop = CancellationToken::new();
    let running = tokio::spawn(fixture.relay().run(Duration::from_secs(3600), stop.clone()));
    fixture.recorder.wait_for(1).await;

    fixture.write_events(1).await;
    fixture.wake.notify_one();
    fixture.recorder.wait_for(2).await;
    stop.cancel();

    tokio::time::timeout(GUARD, running)
        .await
        .expect("the relay stops")
        .unwrap();
    assert!(fixture.unpublished().await.is_empty());
}

#[tokio::test]
async fn a_running_relay_publishes_rows_nobody_woke_it_for_at_its_interval() {
    let fixture = Fixture::new().await;
    fixture.write_events(1).await;
    let stop = CancellationToken::new();
    let running = tokio::spawn(fixture.relay().run(Duration::from_millis(50), stop.clone()));
    fixture.recorder.wait_for(1).await;

    // Written after the first pass, and never announced on `wake`.
    fixture.write_events(1).await;
    fixture.recorder.wait_for(2).await;

    stop.cancel();
    running.await.unwrap();
}
