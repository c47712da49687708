//! The ceiling the pipeline is compared with: N records produced and consumed once, on the same
//! transport, the same partition count, with messages of the same size and keys, and nothing
//! else done with them.
//!
//! The consumer is one member of one group that commits each record synchronously before taking
//! the next, as every stage of the pipeline does (`pipeline/consume.rs`: handle, then commit and
//! wait for the broker to store it). Committing in batches or asynchronously would raise the
//! ceiling, and would still be at-least-once (with more replayed after a crash), but the
//! comparison holds the commit discipline equal so that the gap is what the pipeline's own work
//! costs. The producer hands every record over at once and then waits for the
//! acknowledgements, which is the most a producer can do.
//!
//! - On Kafka (`KAFKA_BROKERS` set): rdkafka directly, configured as `platform::topic` configures
//!   it (an idempotent producer with `acks=all`, a `StreamConsumer` without auto-commit), so the
//!   comparison is with the broker and the client library, not with our wrapper of them.
//! - Without a broker: the same loop through `platform::topic`'s embedded transport, which is what
//!   the pipeline runs on there.
//!
//! Timing starts once the consumer has received and committed a first record, that is once its
//! group has formed, as the pipeline's does after its warm-up.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::future::try_join_all;
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

/// Produces and consumes `messages` on `topic` (which exists, with the pipeline's partition
/// count); returns the time from the first record produced to the last one committed.
pub async fn run(
    brokers: Option<&str>,
    topics: &dyn Topics,
    topic: &str,
    messages: Vec<Message>,
) -> anyhow::Result<Duration> {
    match brokers {
        Some(brokers) => kafka(brokers, topic, messages).await,
        None => embedded(topics, topic, messages).await,
    }
}

async fn kafka(brokers: &str, topic: &str, messages: Vec<Message>) -> anyhow::Result<Duration> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "10000")
        .create()?;
    let consumer: Arc<StreamConsumer> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("{topic}.consumer"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .create()?,
    );
    consumer.subscribe(&[topic])?;

    let commit = |partition: i32, offset: i64| {
        let consumer = consumer.clone();
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(topic, partition, Offset::Offset(offset + 1))
            .expect("a valid offset");
        // Synchronous, on a blocking thread, as `platform::topic::KafkaConsumer::commit` does.
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
    let (partition, offset) = {
        let record = timeout(GUARD, consumer.recv())
            .await
            .context("no first record: the consumer group did not form")??;
        (record.partition(), record.offset())
    };
    commit(partition, offset).await?;

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
    for _ in 0..count {
        let (partition, offset) = {
            let record = timeout(GUARD, consumer.recv())
                .await
                .context("the baseline's records stopped coming")??;
            (record.partition(), record.offset())
        };
        commit(partition, offset).await?;
    }
    let elapsed = started.elapsed();
    producing.await??;
    Ok(elapsed)
}

async fn embedded(
    topics: &dyn Topics,
    topic: &str,
    messages: Vec<Message>,
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
    for _ in 0..count {
        let delivery = timeout(GUARD, consumer.recv())
            .await
            .context("the baseline's records stopped coming")??;
        consumer.commit(&delivery).await?;
    }
    let elapsed = started.elapsed();
    producing.await??;
    Ok(elapsed)
}
