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
//! (librdkafka's defaults wait up to five minutes for a delivery).
//!
//! Rebalancing is librdkafka's default, eager: on every membership change all members give up
//! their partitions and restart from the committed offsets, as the embedded transport does. The
//! other members learn of a change through their next heartbeat (every three seconds), so a
//! joining or leaving member is felt after about that long.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{CommitMode, Consumer as _, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{BorrowedMessage, Header, Headers as _, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _},
};

use super::{Consumer, Delivery, Message, Producer, TopicError, Topics};

/// How long a request to a broker (metadata, topic creation, a commit) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the producer keeps retrying a write before reporting it failed. Long enough to ride
/// out a leader election (a few seconds), short enough for the caller to notice a dead cluster.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a consumer may stay silent (crashed, partitioned) before the group gives its
/// partitions to the other members. Kafka's default is 45 s; brokers accept 6 s and more.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

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
        let consumer: StreamConsumer = client_config(&self.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", millis(SESSION_TIMEOUT))
            .create()?;
        consumer.subscribe(topics)?;
        Ok(Box::new(KafkaConsumer {
            consumer: Arc::new(consumer),
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
    async fn publish_all(&self, messages: Vec<Message>) -> Result<(), TopicError> {
        let deliveries = messages
            .iter()
            .map(|message| self.enqueue(message))
            .collect::<Result<Vec<_>, _>>()?;
        for delivery in deliveries {
            acknowledged(delivery).await?;
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "kafka"
    }
}

struct KafkaConsumer {
    // Shared with the blocking commit task. The last holder to let go drops the consumer, which
    // leaves its group there and then (a round trip that briefly blocks the dropping thread):
    // that is what moves its partitions at once rather than after `SESSION_TIMEOUT`.
    consumer: Arc<StreamConsumer>,
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
        Ok(delivery(&self.consumer.recv().await?))
    }

    async fn commit(&self, delivery: &Delivery) -> Result<(), TopicError> {
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(
            &delivery.topic,
            delivery.partition,
            Offset::Offset(delivery.offset + 1),
        )?;
        // A synchronous commit, so that `commit` returning means the broker has stored it; it
        // blocks its thread for the round trip, hence `spawn_blocking`.
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync))
            .await
            .expect("the commit panicked")?;
        Ok(())
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
