//! The ceiling the pipeline is compared with: N records produced and consumed once, on the same
//! transport, the same partition count, with messages of the same size and keys, and nothing
//! else done with them.
//!
//! The consumer is one member of one group, and it commits as the pipeline's stages do
//! (`platform::topic::consume`): it takes the records that have arrived, up to the pipeline's batch
//! size (`NOTIFIER_BATCH_SIZE`), without waiting for more, and commits them with one synchronous
//! commit before taking the next ones ([`Commit::EachBatch`], the ceiling the ratio is taken
//! against). Holding the commit discipline equal keeps the gap to what the pipeline's own work
//! costs: a ceiling that committed less often than the pipeline would count commits against the
//! pipeline only, one that committed more often (each record, [`Commit::EachRecord`], what the
//! pipeline did before it handled batches) would flatter it. The per-record loop still runs and
//! is reported beside it, to compare with the numbers measured before. The producer hands every
//! record over at once and then waits for the acknowledgements, which is the most a producer can
//! do.
//!
//! - On Kafka (`KAFKA_BROKERS` set): rdkafka directly, configured as `platform::topic` configures
//!   it (an idempotent producer with `acks=all` and no linger, a `StreamConsumer` without
//!   auto-commit that lets the broker hold an empty fetch for 50 ms), so the comparison is with
//!   the broker and the client library, not with our wrapper of them.
//! - Without a broker: the same loop through `platform::topic`'s embedded transport
//!   (`platform/src/topic/sqlite.rs`), which is what the pipeline runs on there.
//!
//! Timing starts once the consumer has received and committed a first record, that is once its
//! group has formed, as the pipeline's does after its warm-up.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::{FutureExt as _, future::try_join_all};
use platform::topic::{Message, Topics};
use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer as _, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
};
use tokio::time::timeout;

/// How long the baseline waits for any one record before giving up.
const GUARD: Duration = Duration::from_secs(60);

/// How the bare consumer commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Each record on its own, before the next is taken.
    EachRecord,
    /// What has arrived, up to this many records, in one commit (the pipeline's way).
    EachBatch(usize),
}

impl Commit {
    fn batch_size(self) -> usize {
        match self {
            Self::EachRecord => 1,
            Self::EachBatch(size) => size.max(1),
        }
    }
}

/// Produces and consumes `messages` on `topic` (which exists, with the pipeline's partition
/// count); returns the time from the first record produced to the last one committed.
pub async fn run(
    brokers: Option<&str>,
    topics: &dyn Topics,
    topic: &str,
    messages: Vec<Message>,
    commit: Commit,
) -> anyhow::Result<Duration> {
    match brokers {
        Some(brokers) => kafka(brokers, topic, messages, commit.batch_size()).await,
        None => embedded(topics, topic, messages, commit.batch_size()).await,
    }
}

async fn kafka(
    brokers: &str,
    topic: &str,
    messages: Vec<Message>,
    batch_size: usize,
) -> anyhow::Result<Duration> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "10000")
        .set("linger.ms", "0")
        .create()?;
    let consumer: Arc<StreamConsumer> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("{topic}.consumer"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("fetch.wait.max.ms", "50")
            .create()?,
    );
    consumer.subscribe(&[topic])?;

    // Commits each partition's last offset in `received`, in one synchronous request on a
    // blocking thread, as `platform::topic::KafkaConsumer::commit_batch` does.
    let commit = |received: BTreeMap<i32, i64>| {
        let consumer = consumer.clone();
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in received {
            offsets
                .add_partition_offset(topic, partition, Offset::Offset(offset + 1))
                .expect("a valid offset");
        }
        async move {
            tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync))
                .await
                .expect("the commit panicked")
        }
    };

    let warm_up = &messages[0];
    producer
        .send(
            FutureRecord::to(topic)
                .key(&warm_up.key)
                .payload(&warm_up.payload),
            Timeout::Never,
        )
        .await
        .map_err(|(err, _)| err)?;
    let first = {
        let record = timeout(GUARD, consumer.recv())
            .await
            .context("no first record: the consumer group did not form")??;
        BTreeMap::from([(record.partition(), record.offset())])
    };
    commit(first).await?;

    let count = messages.len();
    let started = Instant::now();
    let producing = tokio::spawn(async move {
        let sends = messages.iter().map(|message| {
            let record = FutureRecord::to(&message.topic)
                .key(&message.key)
                .payload(&message.payload);
            producer.send(record, Timeout::Never)
        });
        try_join_all(sends).await.map_err(|(err, _)| err)?;
        anyhow::Ok(())
    });
    let mut consumed = 0;
    while consumed < count {
        let mut received = BTreeMap::new();
        let record = timeout(GUARD, consumer.recv())
            .await
            .context("the baseline's records stopped coming")??;
        received.insert(record.partition(), record.offset());
        drop(record);
        let mut taken = 1;
        // What has arrived already, as `Consumer::recv_batch` takes it.
        while taken < batch_size.min(count - consumed) {
            match consumer.recv().now_or_never() {
                Some(Ok(record)) => {
                    received.insert(record.partition(), record.offset());
                    taken += 1;
                }
                _ => break,
            }
        }
        commit(received).await?;
        consumed += taken;
    }
    let elapsed = started.elapsed();
    producing.await??;
    Ok(elapsed)
}

async fn embedded(
    topics: &dyn Topics,
    topic: &str,
    messages: Vec<Message>,
    batch_size: usize,
) -> anyhow::Result<Duration> {
    let producer = topics.producer();
    let consumer = topics
        .subscribe(&format!("{topic}.consumer"), &[topic])
        .await?;

    producer.publish(messages[0].clone()).await?;
    let first = timeout(GUARD, consumer.recv()).await??;
    consumer.commit(&first).await?;

    let count = messages.len();
    let started = Instant::now();
    let producing = tokio::spawn(async move { producer.publish_all(messages).await });
    let mut consumed = 0;
    while consumed < count {
        let batch = timeout(GUARD, consumer.recv_batch(batch_size.min(count - consumed)))
            .await
            .context("the baseline's records stopped coming")??;
        consumer.commit_batch(&batch).await?;
        consumed += batch.len();
    }
    let elapsed = started.elapsed();
    producing.await??;
    Ok(elapsed)
}
