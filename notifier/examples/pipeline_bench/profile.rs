//! Where the pipeline's time goes, measured from outside it, with no change to its code.
//!
//! - [`TimedTopics`] wraps the transport the notifier is built on. For each topic it times what
//!   the consumers of that topic do between receiving a batch and committing it (the stage's own
//!   work: database statements, the provider calls, publishing to the next topic), the commits
//!   themselves, every publish to it, and each record's time on the topic, from the publish call
//!   to its receipt (stamped in a header, [`PUBLISHED_AT`]). Each consumer handles one batch at a
//!   time, so `records / (handling + commit)` is what one consumer of that stage carried per
//!   second of its own work, at the batch sizes the run produced.
//!   It also says when every consumer of a topic has received a record, which is when its group
//!   has formed (the warm-up waits for that).
//! - [`Statements`] counts the SQL statements the process runs and the time they take, from the
//!   events sqlx logs for each one (target `sqlx::query`), so both engines are counted the same
//!   way. Turning those events on costs a few microseconds per statement, so it is used only when
//!   asked for (`BENCH_COUNT_STATEMENTS=1`).
//!
//! The rejected alternative was timing inside the pipeline (metrics in `platform::topic::consume`): it would
//! answer the same question, but would put benchmark code on the production path for good.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use platform::topic::{Consumer, Delivery, Lag, Message, Producer, TopicError, Topics};
use time::OffsetDateTime;
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context};

/// The header the timing producer adds to every message: when it was handed to the producer, in
/// nanoseconds since the Unix epoch. The pipeline's stages read payloads only, and the next
/// stage's messages are new ones, so the header is seen by the timing consumer alone.
pub const PUBLISHED_AT: &str = "bench-published-at";

/// What happened on one topic while timing was on.
#[derive(Debug, Clone, Default)]
pub struct TopicTimes {
    /// Members subscribed to the topic, and how many of them have received a record from it.
    pub consumers: usize,
    pub consumers_served: usize,
    pub received: u64,
    /// From each batch's arrival to the call that commits it, summed.
    pub handling: Duration,
    /// Commit calls (one per batch) and the records of the batches they committed.
    pub commits: u64,
    pub batch_records: u64,
    pub committing: Duration,
    /// Messages published to the topic, in how many calls (`publish_all` is one call for a
    /// batch), and the time spent waiting for the broker's acknowledgements.
    pub published: u64,
    pub publish_calls: u64,
    pub publishing: Duration,
    /// From each record's publish call to its receipt by a consumer, summed: the producer's
    /// batching, the broker, the consumer's fetch, and the wait behind earlier records.
    pub on_topic: Duration,
}

impl TopicTimes {
    fn mean(total: Duration, count: u64) -> Duration {
        total.checked_div(count.max(1) as u32).unwrap_or_default()
    }

    /// Per batch.
    pub fn mean_handling(&self) -> Duration {
        Self::mean(self.handling, self.commits)
    }

    /// Per batch.
    pub fn mean_commit(&self) -> Duration {
        Self::mean(self.committing, self.commits)
    }

    /// Records per batch.
    pub fn mean_batch(&self) -> f64 {
        self.batch_records as f64 / self.commits.max(1) as f64
    }

    pub fn mean_publish_call(&self) -> Duration {
        Self::mean(self.publishing, self.publish_calls)
    }

    pub fn mean_on_topic(&self) -> Duration {
        Self::mean(self.on_topic, self.received)
    }

    /// Records one consumer of this topic carried per second of its own work (handling and
    /// committing), at the batch sizes the run produced.
    pub fn per_consumer_ceiling(&self) -> f64 {
        self.mean_batch()
            / (self.mean_handling() + self.mean_commit())
                .as_secs_f64()
                .max(f64::EPSILON)
    }
}

#[derive(Default)]
struct Times {
    by_topic: Mutex<HashMap<String, TopicTimes>>,
}

impl Times {
    fn update(&self, topic: &str, change: impl FnOnce(&mut TopicTimes)) {
        let mut by_topic = self.by_topic.lock().unwrap();
        change(by_topic.entry(topic.to_owned()).or_default());
    }
}

/// A [`Topics`] that times what goes through it and passes everything on unchanged.
pub struct TimedTopics {
    inner: Arc<dyn Topics>,
    producer: Arc<TimedProducer>,
    times: Arc<Times>,
}

impl TimedTopics {
    pub fn new(inner: Arc<dyn Topics>) -> Self {
        let times = Arc::new(Times::default());
        Self {
            producer: Arc::new(TimedProducer {
                inner: inner.producer(),
                times: times.clone(),
            }),
            inner,
            times,
        }
    }

    pub fn times(&self, topic: &str) -> TopicTimes {
        let by_topic = self.times.by_topic.lock().unwrap();
        by_topic.get(topic).cloned().unwrap_or_default()
    }

    /// Forgets every count and duration (after the warm-up), keeping who is subscribed.
    pub fn reset(&self) {
        for times in self.times.by_topic.lock().unwrap().values_mut() {
            *times = TopicTimes {
                consumers: times.consumers,
                consumers_served: times.consumers_served,
                ..TopicTimes::default()
            };
        }
    }
}

#[async_trait]
impl Topics for TimedTopics {
    async fn ensure_topic(&self, name: &str, partitions: u32) -> Result<(), TopicError> {
        self.inner.ensure_topic(name, partitions).await
    }

    fn producer(&self) -> Arc<dyn Producer> {
        self.producer.clone()
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Consumer>, TopicError> {
        let inner = self.inner.subscribe(group, topics).await?;
        for topic in topics {
            self.times.update(topic, |times| times.consumers += 1);
        }
        Ok(Box::new(TimedConsumer {
            inner,
            times: self.times.clone(),
            served: Mutex::default(),
            received_at: Mutex::default(),
        }))
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

struct TimedProducer {
    inner: Arc<dyn Producer>,
    times: Arc<Times>,
}

impl TimedProducer {
    /// Counts a call under each topic it published to (a router's batch holds the jobs of every
    /// channel), with the whole call's wait.
    fn count(&self, messages: &[Message], took: Duration) {
        let mut topics: Vec<(&str, u64)> = Vec::new();
        for message in messages {
            match topics.iter_mut().find(|(topic, _)| *topic == message.topic) {
                Some((_, count)) => *count += 1,
                None => topics.push((&message.topic, 1)),
            }
        }
        for (topic, count) in topics {
            self.times.update(topic, |times| {
                times.published += count;
                times.publish_calls += 1;
                times.publishing += took;
            });
        }
    }
}

#[async_trait]
impl Producer for TimedProducer {
    async fn publish(&self, message: Message) -> Result<(), TopicError> {
        self.publish_all(vec![message]).await
    }

    async fn publish_all(&self, messages: Vec<Message>) -> Result<(), TopicError> {
        if messages.is_empty() {
            return Ok(());
        }
        let messages: Vec<Message> = messages.into_iter().map(stamped).collect();
        let started = Instant::now();
        // The inner producer's own `publish` for one message, as the pipeline would have called.
        if let [message] = messages.as_slice() {
            self.inner.publish(message.clone()).await?;
        } else {
            self.inner.publish_all(messages.clone()).await?;
        }
        self.count(&messages, started.elapsed());
        Ok(())
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

fn stamped(message: Message) -> Message {
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos();
    message.with_header(PUBLISHED_AT, now.to_string())
}

/// How long ago `delivery` was published, from its [`PUBLISHED_AT`] header.
fn time_on_topic(delivery: &Delivery) -> Option<Duration> {
    let published: i128 = std::str::from_utf8(delivery.header(PUBLISHED_AT)?)
        .ok()?
        .parse()
        .ok()?;
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos();
    u64::try_from(now - published)
        .ok()
        .map(Duration::from_nanos)
}

struct TimedConsumer {
    inner: Box<dyn Consumer>,
    times: Arc<Times>,
    /// The topics this member has received a record from.
    served: Mutex<HashSet<String>>,
    /// When the batch being handled arrived, and how many records it holds.
    received_at: Mutex<Option<(Instant, usize)>>,
}

impl TimedConsumer {
    fn received(&self, batch: &[Delivery]) {
        *self.received_at.lock().unwrap() = Some((Instant::now(), batch.len()));
        for delivery in batch {
            let first = self.served.lock().unwrap().insert(delivery.topic.clone());
            let on_topic = time_on_topic(delivery).unwrap_or_default();
            self.times.update(&delivery.topic, |times| {
                times.received += 1;
                times.consumers_served += usize::from(first);
                times.on_topic += on_topic;
            });
        }
    }
}

#[async_trait]
impl Consumer for TimedConsumer {
    async fn recv(&self) -> Result<Delivery, TopicError> {
        let delivery = self.inner.recv().await?;
        self.received(std::slice::from_ref(&delivery));
        Ok(delivery)
    }

    async fn recv_batch(&self, max: usize) -> Result<Vec<Delivery>, TopicError> {
        let batch = self.inner.recv_batch(max).await?;
        self.received(&batch);
        Ok(batch)
    }

    async fn commit(&self, delivery: &Delivery) -> Result<(), TopicError> {
        self.commit_batch(std::slice::from_ref(delivery)).await
    }

    /// Timed under the topic of its first record (a stage's batches hold one topic, but for the
    /// retry topics, which the benchmark does not reach).
    async fn commit_batch(&self, deliveries: &[Delivery]) -> Result<(), TopicError> {
        let Some(first) = deliveries.first() else {
            return Ok(());
        };
        let started = Instant::now();
        let (handling, records) = self
            .received_at
            .lock()
            .unwrap()
            .map(|(at, records)| (started - at, records))
            .unwrap_or_default();
        self.inner.commit_batch(deliveries).await?;
        let committing = started.elapsed();
        self.times.update(&first.topic, |times| {
            times.commits += 1;
            times.batch_records += records as u64;
            times.handling += handling;
            times.committing += committing;
        });
        Ok(())
    }

    async fn pause(&self, delivery: &Delivery) -> Result<(), TopicError> {
        self.inner.pause(delivery).await
    }

    async fn resume(&self, topic: &str, partition: i32) -> Result<(), TopicError> {
        self.inner.resume(topic, partition).await
    }

    async fn lag(&self) -> Result<Vec<Lag>, TopicError> {
        self.inner.lag().await
    }
}

/// Counts the statements sqlx runs, by their first words (sqlx's `summary`), and sums the time
/// they took, from its `sqlx::query` events. sqlx sends PostgreSQL's `BEGIN` without logging it,
/// so a transaction there is one round trip more than its statements.
#[derive(Clone, Default)]
pub struct Statements {
    by_summary: Arc<Mutex<HashMap<String, u64>>>,
    nanos: Arc<AtomicU64>,
}

/// The statements run so far, by summary, and the time they took.
pub struct StatementCounts {
    pub by_summary: HashMap<String, u64>,
    pub time: Duration,
}

impl Statements {
    pub fn snapshot(&self) -> StatementCounts {
        StatementCounts {
            by_summary: self.by_summary.lock().unwrap().clone(),
            time: Duration::from_nanos(self.nanos.load(Ordering::Relaxed)),
        }
    }
}

impl<S: Subscriber> Layer<S> for Statements {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut fields = StatementFields::default();
        event.record(&mut fields);
        *self
            .by_summary
            .lock()
            .unwrap()
            .entry(fields.summary)
            .or_default() += 1;
        self.nanos
            .fetch_add((fields.elapsed_secs * 1e9) as u64, Ordering::Relaxed);
    }
}

/// The fields of a sqlx statement event that are counted.
#[derive(Default)]
struct StatementFields {
    summary: String,
    elapsed_secs: f64,
}

impl Visit for StatementFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.summary = value.to_owned();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.summary = format!("{value:?}");
        }
    }
}
