//! Kafka through rdkafka (librdkafka): an idempotent producer and group consumers that commit by
//! hand.
//!
//! The producer runs with `enable.idempotence=true`, which implies `acks=all` (set explicitly
//! anyway, because it is the point): a write is acknowledged only once every in-sync replica has
//! it, so an acknowledged record survives the loss of the partition leader; and the broker
//! discards the duplicates that the producer's own retries would otherwise create, with order
//! kept per partition even with several requests in flight. Idempotence covers the producer's
//! retries only; a caller that publishes again after an error still produces a duplicate, which is
//! why consumers deduplicate by event id.
//!
//! Consumers run with `enable.auto.commit=false`: an offset is committed when the caller says the
//! record is processed (see the module docs in `mod.rs` for why). `auto.offset.reset=earliest`
//! makes a new group start from the beginning of each partition, so a consumer that starts after
//! the producer misses nothing.
//!
//! Timeouts are short so that an unreachable Kafka is an error within seconds instead of minutes
//! (librdkafka's defaults wait up to five minutes for a delivery). The producer does not linger
//! (`linger.ms=0`, see [`LINGER`]): every caller waits for its acknowledgement. Consumers let the
//! broker hold an empty fetch for 50 ms rather than 500 ([`FETCH_WAIT`]), for tansu's sake.
//!
//! Rebalancing is librdkafka's default, eager: on every membership change all members give up
//! their partitions and restart from the committed offsets, as the embedded transport does. The
//! other members learn of a change through their next heartbeat (every three seconds), so a
//! joining or leaving member is felt after about that long.
//!
//! Pausing a partition is librdkafka's `pause` plus a `seek` back to the paused record, and some
//! bookkeeping so that a rebalance ends the pause as it does in the embedded transport: see
//! [`Pauses`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use rdkafka::{
    ClientConfig, ClientContext, Message as _, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{
        BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
    },
    error::{KafkaError, RDKafkaErrorCode},
    message::{BorrowedMessage, Header, Headers as _, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _},
};

use super::{Consumer, Delivery, Lag, Message, Producer, TopicError, Topics, last_per_partition};

/// How long a request to a broker (metadata, topic creation, a commit) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the producer keeps retrying a write before reporting it failed. Long enough to ride
/// out a leader election (a few seconds), short enough for the caller to notice a dead cluster.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a consumer may stay silent (crashed, partitioned) before the group gives its
/// partitions to the other members. Kafka's default is 45 s; brokers accept 6 s and more.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the producer holds a message back to batch it with later ones. librdkafka's default
/// is 5 ms, for clients that fire messages and move on; ours wait for each acknowledgement
/// (`publish` returns only then, and a consumer commits only after its publishes), so a linger
/// is added to every stage's handling time, several times the cost of a publish without it (the
/// notifier's `DESIGN.md` §10). Batching does not need it here: a caller with several
/// messages hands them over together (`publish_all`), and messages queued while a request is in
/// flight still share the next one.
const LINGER: Duration = Duration::ZERO;
/// How long a broker may hold a consumer's fetch while it has nothing to return. A broker that
/// follows the protocol answers as soon as a record arrives (`fetch.min.bytes` is 1), so there
/// this only sets how often an idle consumer asks again. tansu, the broker CI runs, holds an
/// empty fetch for the whole wait even when a record arrives meanwhile, so every hop of a
/// pipeline took about librdkafka's default of 500 ms there. 50 ms keeps most of the latency
/// that a shorter wait would save, and below it every idle consumer's polling costs the broker
/// more than the latency it saves (measured in the notifier's `DESIGN.md` §10).
const FETCH_WAIT: Duration = Duration::from_millis(50);

pub struct KafkaTopics {
    brokers: String,
    admin: AdminClient<DefaultClientContext>,
    producer: Arc<KafkaProducer>,
}

/// Settings every client shares.
fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("socket.timeout.ms", millis(REQUEST_TIMEOUT))
        // Topics are created by `ensure_topic` only, with a chosen partition count. Left to the
        // broker's `auto.create.topics.enable`, a producer or a metadata request naming a
        // misspelt topic would create it, with the broker's default partition count.
        .set("allow.auto.create.topics", "false");
    config
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

impl KafkaTopics {
    /// Connects, failing within a few seconds if no broker at `brokers` answers, so that a wrong
    /// `KAFKA_BROKERS` is caught at start-up.
    pub async fn connect(brokers: &str) -> Result<Self, TopicError> {
        let admin = client_config(brokers).create()?;
        let producer: FutureProducer = client_config(brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", millis(DELIVERY_TIMEOUT))
            .set("linger.ms", millis(LINGER))
            .create()?;

        // Creating a client does not connect; asking for the cluster's metadata does. The call
        // blocks its thread, hence `spawn_blocking`.
        let client = producer.clone();
        tokio::task::spawn_blocking(move || client.client().fetch_metadata(None, REQUEST_TIMEOUT))
            .await
            .expect("the metadata request panicked")?;

        Ok(Self {
            brokers: brokers.to_owned(),
            admin,
            producer: Arc::new(KafkaProducer { producer }),
        })
    }

    /// Fails with [`TopicError::UnknownTopic`] if `topic` does not exist.
    async fn check_exists(&self, topic: &str) -> Result<(), TopicError> {
        let client = self.producer.producer.clone();
        let name = topic.to_owned();
        let metadata = tokio::task::spawn_blocking(move || {
            client.client().fetch_metadata(Some(&name), REQUEST_TIMEOUT)
        })
        .await
        .expect("the metadata request panicked")?;
        let found = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if found {
            Ok(())
        } else {
            Err(TopicError::UnknownTopic(topic.to_owned()))
        }
    }
}

impl std::fmt::Debug for KafkaTopics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTopics")
            .field("brokers", &self.brokers)
            .finish()
    }
}

#[async_trait]
impl Topics for KafkaTopics {
    async fn ensure_topic(&self, name: &str, partitions: u32) -> Result<(), TopicError> {
        if partitions == 0 {
            return Err(TopicError::NoPartitions);
        }
        let partitions = i32::try_from(partitions).unwrap_or(i32::MAX);
        // -1: the broker's `default.replication.factor`, which is the cluster operator's call
        // (1 on a development broker, 3 in production), not each service's.
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(-1));
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        for result in self.admin.create_topics([&topic], &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(KafkaError::AdminOp(code).into()),
            }
        }
        Ok(())
    }

    fn producer(&self) -> Arc<dyn Producer> {
        self.producer.clone()
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Consumer>, TopicError> {
        // Kafka would accept the subscription and wait for the topic to appear; an error now is
        // more useful (and matches the embedded transport).
        for topic in topics {
            self.check_exists(topic).await?;
        }
        let consumer: StreamConsumer<Pauses> = client_config(&self.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", millis(SESSION_TIMEOUT))
            .set("fetch.wait.max.ms", millis(FETCH_WAIT))
            .create_with_context(Pauses::default())?;
        consumer.subscribe(topics)?;
        Ok(Box::new(KafkaConsumer {
            consumer: Arc::new(consumer),
            group: group.to_owned(),
            topics: topics.iter().map(|&topic| topic.to_owned()).collect(),
        }))
    }

    fn backend(&self) -> &'static str {
        "kafka"
    }
}

struct KafkaProducer {
    producer: FutureProducer,
}

impl KafkaProducer {
    /// Hands `message` to librdkafka's queue, returning the future of its acknowledgement.
    fn enqueue(&self, message: &Message) -> Result<DeliveryFuture, TopicError> {
        let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
        for (name, value) in &message.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        let record = FutureRecord::to(&message.topic)
            .key(&message.key)
            .payload(&message.payload)
            .headers(headers);
        self.producer
            .send_result(record)
            .map_err(|(err, _record)| err.into())
    }
}

/// Waits for the broker's acknowledgement of one enqueued message.
async fn acknowledged(delivery: DeliveryFuture) -> Result<(), TopicError> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((err, _message))) => Err(err.into()),
        // The producer was dropped with the message still queued; we hold it, so this cannot be.
        Err(_canceled) => Err(KafkaError::Canceled.into()),
    }
}

#[async_trait]
impl Producer for KafkaProducer {
    async fn publish(&self, message: Message) -> Result<(), TopicError> {
        acknowledged(self.enqueue(&message)?).await
    }

    /// Enqueues every message before awaiting any acknowledgement, so the batch costs about one
    /// round trip rather than one per message; the idempotent producer keeps them in order.
    ///
    /// After an error it still waits for every message it enqueued to be acknowledged or given
    /// up, so that what it returns is the batch's last word (the trait's promise): returning at
    /// the first error would leave the rest in librdkafka's queue, still to be written while the
    /// caller, told the batch failed, hands it to someone else.
    async fn publish_all(&self, messages: Vec<Message>) -> Result<(), TopicError> {
        let mut enqueued = Vec::with_capacity(messages.len());
        let mut first_error = None;
        for message in &messages {
            match self.enqueue(message) {
                Ok(delivery) => enqueued.push(delivery),
                Err(err) => {
                    first_error = Some(err);
                    break;
                }
            }
        }
        for delivery in enqueued {
            if let Err(err) = acknowledged(delivery).await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn backend(&self) -> &'static str {
        "kafka"
    }
}

struct KafkaConsumer {
    // Shared with the blocking commit task. The last holder to let go drops the consumer, which
    // leaves its group there and then (a round trip that briefly blocks the dropping thread):
    // that is what moves its partitions at once rather than after `SESSION_TIMEOUT`.
    consumer: Arc<StreamConsumer<Pauses>>,
    group: String,
    topics: Vec<String>,
}

/// The partitions this consumer has paused, each with the offset it resumes from; the consumer's
/// rdkafka context, so that a rebalance can end them.
///
/// Pausing takes three steps: this map, librdkafka's `pause` (it stops fetching the partition),
/// and a `seek` to the paused record (the next fetch starts there; without it, librdkafka would
/// resume after the last record it handed out, skipping the paused one). Both calls make
/// librdkafka discard what it had prefetched for the partition, but a `recv` running in another
/// task can have taken a record off the queue just before, and return it after the pause: `recv`
/// consults the map, which is why the map comes first, and drops such a record. Dropping is safe
/// because the seek makes the partition fetch it again.
///
/// Rebalances are the hard part. librdkafka keeps the application's pause flag on a partition
/// across a rebalance (it resets only its own), while the new assignment moves the partition's
/// position to the committed offset. Left alone, a partition paused here that a rebalance gives
/// back to this member would stay paused behind a pause its new assignment knows nothing about,
/// where the embedded transport (and Kafka's Java client) start every reassigned partition
/// unpaused; and had only librdkafka's flag been cleared, this map would make `recv` drop the
/// partition's records. So every rebalance (`post_rebalance`, for the revocation and for the new
/// assignment) resumes whatever this map holds and forgets it: every partition starts again from
/// the committed offset, unpaused, and the paused record, being uncommitted, comes again to
/// whichever member owns it (`conformance::a_rebalance_ends_a_pause`, which fails without this).
///
/// **No lock is held across a librdkafka call.** The rebalance callback runs inside `recv`, on
/// the thread that polls, and a pause or resume runs on a blocking thread; had the lock been held
/// across `pause`'s calls into librdkafka, a rebalance would wait for them on the polling thread,
/// and any of them that waits for something the poll must first let through would never return
/// (the consumer and, on a current-thread runtime, everything else on it stalled for good). So
/// the map is locked only to read or change it, and a pause that a rebalance overtook is undone
/// by counting rebalances instead: `pause_at` notes the count when it records the pause, and if
/// a rebalance ran before its librdkafka calls were done (the callback having resumed and
/// forgotten whatever the map held at that moment, perhaps before this pause took effect), it
/// resumes the partition itself, as the rebalance would have.
#[derive(Default)]
struct Pauses {
    state: Mutex<PauseState>,
}

#[derive(Default)]
struct PauseState {
    paused: HashMap<(String, i32), i64>,
    /// Rebalances so far.
    rebalances: u64,
}

impl ClientContext for Pauses {}

impl ConsumerContext for Pauses {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Error(_)) {
            return;
        }
        let paused = {
            let mut state = self.lock();
            state.rebalances += 1;
            std::mem::take(&mut state.paused)
        };
        if paused.is_empty() {
            return;
        }
        let mut partitions = TopicPartitionList::new();
        for (topic, partition) in paused.keys() {
            partitions.add_partition(topic, *partition);
        }
        // On a partition this member no longer owns, resuming only clears librdkafka's flag, so
        // that the partition is not still paused if it is ever assigned here again.
        if let Err(err) = consumer.resume(&partitions) {
            tracing::warn!(error = %err, "resuming paused partitions after a rebalance");
        }
    }
}

impl Pauses {
    fn lock(&self) -> std::sync::MutexGuard<'_, PauseState> {
        self.state
            .lock()
            .expect("the pauses lock is never held across a panic")
    }

    /// Whether `partition` of `topic` is paused: its records are to be dropped, not delivered.
    fn is_paused(&self, topic: &str, partition: i32) -> bool {
        let state = self.lock();
        !state.paused.is_empty() && state.paused.contains_key(&(topic.to_owned(), partition))
    }
}

/// Whether `partition` of `topic` is in `consumer`'s current assignment.
fn is_assigned(
    consumer: &StreamConsumer<Pauses>,
    topic: &str,
    partition: i32,
) -> Result<bool, TopicError> {
    Ok(consumer
        .assignment()?
        .find_partition(topic, partition)
        .is_some())
}

/// Pauses `delivery`'s partition and seeks it back to `delivery` (see [`Pauses`]). Blocking.
fn pause_at(consumer: &StreamConsumer<Pauses>, delivery: &Delivery) -> Result<(), TopicError> {
    let (topic, partition) = (delivery.topic.as_str(), delivery.partition);
    let key = (topic.to_owned(), partition);
    // Not assigned: a rebalance took the partition away, and its new owner starts from the
    // committed offset, which is at or before this uncommitted record.
    if !is_assigned(consumer, topic, partition)? {
        return Ok(());
    }
    let rebalances = {
        let mut state = consumer.context().lock();
        state.paused.insert(key.clone(), delivery.offset);
        state.rebalances
    };
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition(topic, partition);
    let paused = consumer.pause(&partitions);
    // Should the seek fail, the partition stays paused at librdkafka's position (after
    // `delivery`) and recorded, and `resume` seeks again before resuming.
    let sought = match paused {
        Ok(()) => consumer.seek(
            topic,
            partition,
            Offset::Offset(delivery.offset),
            REQUEST_TIMEOUT,
        ),
        Err(_) => Ok(()),
    };
    let overtaken = {
        let mut state = consumer.context().lock();
        let overtaken = state.rebalances != rebalances;
        if overtaken || paused.is_err() {
            state.paused.remove(&key);
        }
        overtaken
    };
    if overtaken {
        // The rebalance started the partition again from the committed offset; this pause,
        // which it could not see whole, must not outlive it.
        let _ = consumer.resume(&partitions);
        return Ok(());
    }
    paused?;
    Ok(sought?)
}

/// Seeks the partition back to where it was paused and resumes it (see [`Pauses`]). Blocking.
fn resume_from_pause(
    consumer: &StreamConsumer<Pauses>,
    topic: &str,
    partition: i32,
) -> Result<(), TopicError> {
    let key = (topic.to_owned(), partition);
    let Some(offset) = consumer.context().lock().paused.get(&key).copied() else {
        // Never paused, or a rebalance ended the pause already.
        return Ok(());
    };
    // The seek that `pause` made normally stands; this one covers a pause whose seek failed.
    // It fails on a partition that is no longer assigned, which needs no seek: the rebalance
    // that is about to run `post_rebalance` starts it from the committed offset.
    if let Err(err) = consumer.seek(topic, partition, Offset::Offset(offset), REQUEST_TIMEOUT)
        && is_assigned(consumer, topic, partition)?
    {
        return Err(err.into());
    }
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition(topic, partition);
    consumer.resume(&partitions)?;
    consumer.context().lock().paused.remove(&key);
    Ok(())
}

/// How far `group` is behind on each of `topics`: every partition's high watermark minus the
/// group's committed offset, or minus its low watermark where the group has committed nothing
/// (where `auto.offset.reset=earliest` starts it). Blocking: a metadata request per topic, one
/// for the committed offsets, one per partition for its watermarks.
fn lag_of(
    consumer: &StreamConsumer<Pauses>,
    group: &str,
    topics: &[String],
) -> Result<Vec<Lag>, TopicError> {
    let mut partitions = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
        for found in metadata
            .topics()
            .iter()
            .filter(|found| found.name() == topic)
        {
            for partition in found.partitions() {
                partitions.add_partition(topic, partition.id());
            }
        }
    }
    let mut lags: Vec<Lag> = topics
        .iter()
        .map(|topic| Lag {
            group: group.to_owned(),
            topic: topic.clone(),
            records: 0,
        })
        .collect();
    let committed = consumer.committed_offsets(partitions, REQUEST_TIMEOUT)?;
    for partition in committed.elements() {
        let (topic, index) = (partition.topic(), partition.partition());
        let (low, high) = consumer.fetch_watermarks(topic, index, REQUEST_TIMEOUT)?;
        let from = match partition.offset() {
            Offset::Offset(offset) => offset,
            _ => low,
        };
        if let Some(lag) = lags.iter_mut().find(|lag| lag.topic == topic) {
            lag.records += u64::try_from(high - from).unwrap_or(0);
        }
    }
    Ok(lags)
}

fn delivery(message: &BorrowedMessage<'_>) -> Delivery {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| (header.key.to_owned(), header.value.unwrap_or(&[]).to_vec()))
                .collect()
        })
        .unwrap_or_default();
    Delivery {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().unwrap_or(&[]).to_vec(),
        payload: message.payload().unwrap_or(&[]).to_vec(),
        headers,
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn recv(&self) -> Result<Delivery, TopicError> {
        loop {
            let message = self.consumer.recv().await?;
            let pauses = self.consumer.context();
            if !pauses.is_paused(message.topic(), message.partition()) {
                return Ok(delivery(&message));
            }
        }
    }

    async fn commit(&self, delivery: &Delivery) -> Result<(), TopicError> {
        self.commit_batch(std::slice::from_ref(delivery)).await
    }

    /// Every partition's offset in one request.
    async fn commit_batch(&self, deliveries: &[Delivery]) -> Result<(), TopicError> {
        let mut offsets = TopicPartitionList::new();
        for delivery in last_per_partition(deliveries) {
            offsets.add_partition_offset(
                &delivery.topic,
                delivery.partition,
                Offset::Offset(delivery.offset + 1),
            )?;
        }
        if offsets.count() == 0 {
            return Ok(());
        }
        // A synchronous commit, so that `commit` returning means the broker has stored it; it
        // blocks its thread for the round trip, hence `spawn_blocking`.
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync))
            .await
            .expect("the commit panicked")?;
        Ok(())
    }

    async fn pause(&self, delivery: &Delivery) -> Result<(), TopicError> {
        // librdkafka's pause and seek wait for its own threads, hence `spawn_blocking`.
        let (consumer, delivery) = (self.consumer.clone(), delivery.clone());
        tokio::task::spawn_blocking(move || pause_at(&consumer, &delivery))
            .await
            .expect("the pause panicked")
    }

    async fn resume(&self, topic: &str, partition: i32) -> Result<(), TopicError> {
        let (consumer, topic) = (self.consumer.clone(), topic.to_owned());
        tokio::task::spawn_blocking(move || resume_from_pause(&consumer, &topic, partition))
            .await
            .expect("the resume panicked")
    }

    async fn lag(&self) -> Result<Vec<Lag>, TopicError> {
        let (consumer, group, topics) = (
            self.consumer.clone(),
            self.group.clone(),
            self.topics.clone(),
        );
        tokio::task::spawn_blocking(move || lag_of(&consumer, &group, &topics))
            .await
            .expect("measuring the lag panicked")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_kafka_is_an_error_within_seconds() {
        // Nothing listens on port 1. The guard is the bound this test checks, not a wait.
        let connected =
            tokio::time::timeout(REQUEST_TIMEOUT * 3, KafkaTopics::connect("127.0.0.1:1"))
                .await
                .expect("connect should give up on its own");
        assert!(connected.is_err());
    }
}
