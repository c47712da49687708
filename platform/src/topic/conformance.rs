//! Behaviour every transport must share, run against the in-process one in `memory.rs` and
//! against the one `KAFKA_BROKERS` selects in `mod.rs`.
//!
//! Each check uses topics and groups no other check uses, so checks can run in parallel on one
//! broker. Nothing here sleeps: a check waits for the records it expects, and the only timeout is
//! a generous guard that turns a hang into a failure (a Kafka consumer group takes seconds to
//! form, so the guard is far above that).

use std::{collections::BTreeMap, time::Duration};

use super::{Consumer, Delivery, Message, Topics};
use crate::testing::unique_topic;

const GUARD: Duration = Duration::from_secs(60);

/// A new topic (`test.<uuid>`) with `partitions` partitions.
async fn new_topic(topics: &dyn Topics, partitions: u32) -> String {
    let name = unique_topic();
    topics.ensure_topic(&name, partitions).await.unwrap();
    name
}

/// A group name no other check uses.
fn new_group() -> String {
    format!("test-group.{}", uuid::Uuid::new_v4().simple())
}

async fn recv(consumer: &dyn Consumer) -> Delivery {
    tokio::time::timeout(GUARD, consumer.recv())
        .await
        .unwrap_or_else(|_| panic!("no record within {GUARD:?}"))
        .expect("recv failed")
}

async fn recv_n(consumer: &dyn Consumer, n: usize) -> Vec<Delivery> {
    let mut deliveries = Vec::with_capacity(n);
    for _ in 0..n {
        deliveries.push(recv(consumer).await);
    }
    deliveries
}

fn payloads(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|delivery| String::from_utf8(delivery.payload.clone()).unwrap())
        .collect()
}

pub async fn a_record_arrives_with_its_key_payload_and_headers(topics: &dyn Topics) {
    let topic = new_topic(topics, 1).await;
    let message = Message::new(&topic, "payment-1", br#"{"amount":100}"#)
        .with_header("event-id", "e-1")
        .with_header("content-type", "application/json");
    topics.producer().publish(message).await.unwrap();

    let consumer = topics.subscribe(&new_group(), &[&topic]).await.unwrap();
    let delivery = recv(&*consumer).await;

    assert_eq!(delivery.topic, topic);
    assert_eq!(delivery.partition, 0);
    assert_eq!(delivery.key, b"payment-1");
    assert_eq!(delivery.payload, br#"{"amount":100}"#);
    assert_eq!(
        delivery.headers,
        vec![
            ("event-id".to_owned(), b"e-1".to_vec()),
            ("content-type".to_owned(), b"application/json".to_vec()),
        ]
    );
    assert_eq!(delivery.header("event-id"), Some(&b"e-1"[..]));
}

pub async fn records_with_the_same_key_arrive_in_publish_order(topics: &dyn Topics) {
    let topic = new_topic(topics, 3).await;
    let keys = ["alice", "bob", "carol", "dave"];
    let per_key = 10;
    let messages = (0..per_key)
        .flat_map(|seq| keys.map(|key| Message::new(&topic, key, format!("{key}-{seq}"))))
        .collect::<Vec<_>>();
    topics.producer().publish_all(messages).await.unwrap();

    let consumer = topics.subscribe(&new_group(), &[&topic]).await.unwrap();
    let deliveries = recv_n(&*consumer, keys.len() * per_key).await;

    let mut by_key: BTreeMap<Vec<u8>, Vec<Delivery>> = BTreeMap::new();
    for delivery in deliveries {
        by_key
            .entry(delivery.key.clone())
            .or_default()
            .push(delivery);
    }
    for key in keys {
        let received = &by_key[key.as_bytes()];
        let published: Vec<String> = (0..per_key).map(|seq| format!("{key}-{seq}")).collect();
        assert_eq!(
            payloads(received),
            published,
            "{key}'s records out of order"
        );
        assert!(
            received
                .iter()
                .all(|delivery| delivery.partition == received[0].partition),
            "{key}'s records were spread over several partitions"
        );
    }
}

pub async fn a_consumer_waits_for_records_published_after_it_subscribed(topics: &dyn Topics) {
    let topic = new_topic(topics, 2).await;
    let consumer = topics.subscribe(&new_group(), &[&topic]).await.unwrap();

    let (delivery, ()) = tokio::join!(recv(&*consumer), async {
        // Yield first, so the consumer is already waiting when the record is published.
        tokio::task::yield_now().await;
        let message = Message::new(&topic, "k", "late");
        topics.producer().publish(message).await.unwrap();
    });

    assert_eq!(delivery.payload, b"late");
}

pub async fn each_group_receives_every_record(topics: &dyn Topics) {
    let topic = new_topic(topics, 2).await;
    let messages = (0..6)
        .map(|i| Message::new(&topic, format!("key-{i}"), format!("record-{i}")))
        .collect();
    topics.producer().publish_all(messages).await.unwrap();

    let first = topics.subscribe(&new_group(), &[&topic]).await.unwrap();
    let deliveries = recv_n(&*first, 6).await;
    for delivery in &deliveries {
        first.commit(delivery).await.unwrap();
    }
    let mut received_by_first = payloads(&deliveries);
    let second = topics.subscribe(&new_group(), &[&topic]).await.unwrap();
    let mut received_by_second = payloads(&recv_n(&*second, 6).await);

    received_by_first.sort();
    received_by_second.sort();
    let everything: Vec<String> = (0..6).map(|i| format!("record-{i}")).collect();
    assert_eq!(received_by_first, everything);
    assert_eq!(received_by_second, everything);
}

pub async fn the_next_consumer_of_a_group_resumes_after_the_last_commit(topics: &dyn Topics) {
    // One partition, so that "after the last commit" is a single, total order. Published one at a
    // time, so each record is a batch of its own; the next check commits inside a batch.
    let topic = new_topic(topics, 1).await;
    let group = new_group();
    for i in 1..=4 {
        let message = Message::new(&topic, "k", format!("record-{i}"));
        topics.producer().publish(message).await.unwrap();
    }

    let first = topics.subscribe(&group, &[&topic]).await.unwrap();
    let received = recv_n(&*first, 4).await;
    first.commit(&received[1]).await.unwrap();
    // The first consumer stops after processing record-2, before it processes record-3 and 4.
    drop(first);

    let next = topics.subscribe(&group, &[&topic]).await.unwrap();
    let redelivered = recv_n(&*next, 2).await;

    assert_eq!(payloads(&redelivered), ["record-3", "record-4"]);
}

/// As above, but the records were published together, so the broker stores them as one batch and
/// the next consumer must start fetching in the middle of it (what a consumer restarting during an
/// outbox relay's batch does).
pub async fn the_next_consumer_resumes_after_a_commit_inside_a_batch(topics: &dyn Topics) {
    let topic = new_topic(topics, 1).await;
    let group = new_group();
    let messages = (1..=4)
        .map(|i| Message::new(&topic, "k", format!("record-{i}")))
        .collect();
    topics.producer().publish_all(messages).await.unwrap();

    let first = topics.subscribe(&group, &[&topic]).await.unwrap();
    let received = recv_n(&*first, 4).await;
    first.commit(&received[1]).await.unwrap();
    drop(first);

    let next = topics.subscribe(&group, &[&topic]).await.unwrap();
    let redelivered = recv_n(&*next, 2).await;

    assert_eq!(payloads(&redelivered), ["record-3", "record-4"]);
}

pub async fn a_group_that_committed_everything_receives_only_new_records(topics: &dyn Topics) {
    let topic = new_topic(topics, 1).await;
    let group = new_group();
    let producer = topics.producer();
    let messages = (1..=2)
        .map(|i| Message::new(&topic, "k", format!("old-{i}")))
        .collect();
    producer.publish_all(messages).await.unwrap();

    let first = topics.subscribe(&group, &[&topic]).await.unwrap();
    let received = recv_n(&*first, 2).await;
    first.commit(&received[1]).await.unwrap();
    drop(first);
    producer
        .publish(Message::new(&topic, "k", "new"))
        .await
        .unwrap();

    let next = topics.subscribe(&group, &[&topic]).await.unwrap();
    assert_eq!(recv(&*next).await.payload, b"new");
}

pub async fn a_consumer_receives_only_the_topics_it_subscribed_to(topics: &dyn Topics) {
    let (mine, other) = (new_topic(topics, 1).await, new_topic(topics, 1).await);
    let producer = topics.producer();
    producer
        .publish(Message::new(&other, "k", "not for me"))
        .await
        .unwrap();
    producer
        .publish(Message::new(&mine, "k", "for me"))
        .await
        .unwrap();

    let consumer = topics.subscribe(&new_group(), &[&mine]).await.unwrap();
    let delivery = recv(&*consumer).await;

    assert_eq!(delivery.topic, mine);
    assert_eq!(delivery.payload, b"for me");
}

pub async fn ensuring_an_existing_topic_changes_nothing(topics: &dyn Topics) {
    let topic = new_topic(topics, 1).await;
    topics
        .producer()
        .publish(Message::new(&topic, "k", "kept"))
        .await
        .unwrap();

    topics.ensure_topic(&topic, 1).await.unwrap();

    let consumer = topics.subscribe(&new_group(), &[&topic]).await.unwrap();
    assert_eq!(recv(&*consumer).await.payload, b"kept");
}

pub async fn subscribing_to_a_missing_topic_is_an_error(topics: &dyn Topics) {
    let missing = unique_topic();
    let subscribed = topics.subscribe(&new_group(), &[&missing]).await;
    assert!(
        subscribed.is_err(),
        "subscribing to {missing} should have failed"
    );
}

/// Every check in turn, for a backend that is cheap to set up (the in-process one).
pub async fn all(topics: &dyn Topics) {
    a_record_arrives_with_its_key_payload_and_headers(topics).await;
    records_with_the_same_key_arrive_in_publish_order(topics).await;
    a_consumer_waits_for_records_published_after_it_subscribed(topics).await;
    each_group_receives_every_record(topics).await;
    the_next_consumer_of_a_group_resumes_after_the_last_commit(topics).await;
    the_next_consumer_resumes_after_a_commit_inside_a_batch(topics).await;
    a_group_that_committed_everything_receives_only_new_records(topics).await;
    a_consumer_receives_only_the_topics_it_subscribed_to(topics).await;
    ensuring_an_existing_topic_changes_nothing(topics).await;
    subscribing_to_a_missing_topic_is_an_error(topics).await;
}
