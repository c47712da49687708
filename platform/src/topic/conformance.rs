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

/// Publishes `payloads` to `topic` under `key` one at a time, so that each record is a batch of its
/// own. The pause checks rewind to a record and fetch from it again, and tansu (the broker CI runs)
/// cannot serve a fetch that starts inside a batch.
async fn publish_each(topics: &dyn Topics, topic: &str, key: &str, payloads: &[&str]) {
    let producer = topics.producer();
    for payload in payloads {
        let message = Message::new(topic, key, *payload);
        producer.publish(message).await.unwrap();
    }
}

/// Two keys that land in different partitions of `topic`, which has two. Each transport has its
/// own partitioner, so this asks the transport: it publishes a probe per candidate key and reads
/// where each landed, through `consumer` (which must read all of `topic`), committing the probes
/// so that they do not come again.
async fn keys_in_different_partitions(
    topics: &dyn Topics,
    consumer: &dyn Consumer,
    topic: &str,
) -> (String, String) {
    let candidates: Vec<String> = (0..16).map(|i| format!("key-{i}")).collect();
    let probes = candidates
        .iter()
        .map(|key| Message::new(topic, key.as_str(), "probe"))
        .collect();
    topics.producer().publish_all(probes).await.unwrap();
    let landed = recv_n(consumer, candidates.len()).await;
    for probe in &landed {
        consumer.commit(probe).await.unwrap();
    }
    let in_partition = |partition: i32| {
        landed
            .iter()
            .find(|delivery| delivery.partition == partition)
            .map(|delivery| String::from_utf8(delivery.key.clone()).unwrap())
            .expect("16 keys should not all hash to one of two partitions")
    };
    (in_partition(0), in_partition(1))
}

pub async fn a_paused_partition_delivers_nothing_while_the_others_keep_delivering(
    topics: &dyn Topics,
) {
    let topic = new_topic(topics, 2).await;
    let consumer = topics.subscribe(&new_group(), &[&topic]).await.unwrap();
    let (paused_key, flowing_key) = keys_in_different_partitions(topics, &*consumer, &topic).await;
    publish_each(topics, &topic, &paused_key, &["paused-1"]).await;
    let not_due = recv(&*consumer).await;

    consumer.pause(&not_due).await.unwrap();
    publish_each(topics, &topic, &paused_key, &["paused-2"]).await;
    publish_each(
        topics,
        &topic,
        &flowing_key,
        &["flowing-1", "flowing-2", "flowing-3"],
    )
    .await;
    let received = recv_n(&*consumer, 3).await;

    assert_eq!(payloads(&received), ["flowing-1", "flowing-2", "flowing-3"]);
}

pub async fn after_resume_the_paused_record_comes_first_then_the_rest_in_order_once_each(
    topics: &dyn Topics,
) {
    let topic = new_topic(topics, 1).await;
    let consumer = topics.subscribe(&new_group(), &[&topic]).await.unwrap();
    publish_each(topics, &topic, "k", &["record-1", "record-2", "record-3"]).await;
    let received = recv_n(&*consumer, 2).await;
    consumer.pause(&received[1]).await.unwrap();
    publish_each(topics, &topic, "k", &["record-4"]).await;

    consumer.resume(&topic, 0).await.unwrap();
    let after_resume = recv_n(&*consumer, 3).await;
    publish_each(topics, &topic, "k", &["record-5"]).await;
    let next = recv(&*consumer).await;

    assert_eq!(payloads(&received), ["record-1", "record-2"]);
    assert_eq!(
        payloads(&after_resume),
        ["record-2", "record-3", "record-4"]
    );
    // Had anything come twice, it would have arrived before record-5.
    assert_eq!(next.payload, b"record-5");
}

pub async fn resuming_a_partition_that_is_not_paused_changes_nothing(topics: &dyn Topics) {
    let topic = new_topic(topics, 1).await;
    let consumer = topics.subscribe(&new_group(), &[&topic]).await.unwrap();
    publish_each(topics, &topic, "k", &["record-1", "record-2"]).await;
    let first = recv(&*consumer).await;

    consumer.resume(&topic, 0).await.unwrap();
    // Neither is assigned to this consumer: a partition that does not exist, a topic it does
    // not read.
    consumer.resume(&topic, 7).await.unwrap();
    consumer.resume(&unique_topic(), 0).await.unwrap();
    let second = recv(&*consumer).await;

    assert_eq!(payloads(&[first, second]), ["record-1", "record-2"]);
}

pub async fn a_paused_record_that_was_not_committed_goes_to_the_next_member(topics: &dyn Topics) {
    let topic = new_topic(topics, 1).await;
    let group = new_group();
    publish_each(topics, &topic, "k", &["record-1", "record-2"]).await;
    let first = topics.subscribe(&group, &[&topic]).await.unwrap();
    let received = recv_n(&*first, 2).await;
    first.commit(&received[0]).await.unwrap();
    first.pause(&received[1]).await.unwrap();

    drop(first);
    let next = topics.subscribe(&group, &[&topic]).await.unwrap();

    assert_eq!(recv(&*next).await.payload, b"record-2");
}

/// A batch is what has arrived, up to its size: never more, never an empty one, each partition
/// in order, and batches one after another give every record once.
pub async fn a_batch_holds_what_has_arrived_up_to_its_size_in_order(topics: &dyn Topics) {
    let topic = new_topic(topics, 1).await;
    let consumer = topics.subscribe(&new_group(), &[&topic]).await.unwrap();
    let sent: Vec<String> = (1..=7).map(|i| format!("record-{i}")).collect();
    let messages = sent
        .iter()
        .map(|p| Message::new(&topic, "k", p.as_str()))
        .collect();
    topics.producer().publish_all(messages).await.unwrap();

    let mut received = Vec::new();
    while received.len() < sent.len() {
        let batch = tokio::time::timeout(GUARD, consumer.recv_batch(3))
            .await
            .unwrap_or_else(|_| panic!("no batch within {GUARD:?}"))
            .expect("recv_batch failed");
        assert!((1..=3).contains(&batch.len()), "a batch of {}", batch.len());
        received.extend(batch);
    }

    assert_eq!(payloads(&received), sent);
}

/// One batch commit covers every partition in it, each up to the last of its records committed,
/// whatever their order in the batch.
pub async fn a_batch_commit_covers_each_partition_up_to_its_last_record(topics: &dyn Topics) {
    let topic = new_topic(topics, 2).await;
    let group = new_group();
    let first = topics.subscribe(&group, &[&topic]).await.unwrap();
    let (key_a, key_b) = keys_in_different_partitions(topics, &*first, &topic).await;
    publish_each(topics, &topic, &key_a, &["a-1", "a-2", "a-3"]).await;
    publish_each(topics, &topic, &key_b, &["b-1", "b-2", "b-3"]).await;
    let received = recv_n(&*first, 6).await;
    let by_payload = |payload: &str| {
        received
            .iter()
            .find(|delivery| delivery.payload == payload.as_bytes())
            .unwrap()
            .clone()
    };

    first
        .commit_batch(&[by_payload("b-2"), by_payload("a-2"), by_payload("a-1")])
        .await
        .unwrap();
    drop(first);
    let next = topics.subscribe(&group, &[&topic]).await.unwrap();
    let mut rest = payloads(&recv_n(&*next, 2).await);
    rest.sort();

    assert_eq!(rest, ["a-3", "b-3"]);
}

/// A rebalance starts every partition again from the committed offset, paused or not, so a
/// paused record comes again to whichever member now owns its partition, and cannot stay stuck
/// behind a pause its new owner knows nothing about. Both partitions are paused, so that the
/// first member, which keeps one of them, keeps a partition it had paused.
pub async fn a_rebalance_ends_a_pause(topics: &dyn Topics) {
    let topic = new_topic(topics, 2).await;
    let group = new_group();
    let first = topics.subscribe(&group, &[&topic]).await.unwrap();
    let (key_a, key_b) = keys_in_different_partitions(topics, &*first, &topic).await;
    publish_each(topics, &topic, &key_a, &["a-1"]).await;
    publish_each(topics, &topic, &key_b, &["b-1"]).await;
    for not_due in recv_n(&*first, 2).await {
        first.pause(&not_due).await.unwrap();
    }

    let second = topics.subscribe(&group, &[&topic]).await.unwrap();
    let mut again = Vec::new();
    while again.len() < 2 {
        let delivery = tokio::time::timeout(GUARD, async {
            tokio::select! {
                delivery = first.recv() => delivery,
                delivery = second.recv() => delivery,
            }
        })
        .await
        .unwrap_or_else(|_| panic!("received only {:?} within {GUARD:?}", payloads(&again)))
        .expect("recv failed");
        again.push(delivery);
    }

    let mut again = payloads(&again);
    again.sort();
    assert_eq!(again, ["a-1", "b-1"]);
    // The pauses it would end are gone already.
    first.resume(&topic, 0).await.unwrap();
    first.resume(&topic, 1).await.unwrap();
}

/// The records `consumer`'s group, `group`, has not committed on `topic`, its only topic.
async fn lag(consumer: &dyn Consumer, group: &str, topic: &str) -> u64 {
    let lags = consumer.lag().await.expect("measuring the lag");
    assert_eq!(lags.len(), 1, "{lags:?}");
    assert_eq!(
        (lags[0].group.as_str(), lags[0].topic.as_str()),
        (group, topic)
    );
    lags[0].records
}

/// A group's lag is what it has not committed, on every partition, whichever member asks; a
/// group that has committed nothing is behind by the whole topic.
pub async fn the_lag_is_what_the_group_has_not_committed_on_every_partition(topics: &dyn Topics) {
    let topic = new_topic(topics, 2).await;
    let group = new_group();
    let consumer = topics.subscribe(&group, &[&topic]).await.unwrap();
    let (key_a, key_b) = keys_in_different_partitions(topics, &*consumer, &topic).await;
    let probes = 16;
    let caught_up = lag(&*consumer, &group, &topic).await;
    publish_each(topics, &topic, &key_a, &["a-1", "a-2", "a-3"]).await;
    publish_each(topics, &topic, &key_b, &["b-1", "b-2"]).await;
    let behind = lag(&*consumer, &group, &topic).await;
    let received = recv_n(&*consumer, 5).await;
    let by_payload = |payload: &str| {
        received
            .iter()
            .find(|delivery| delivery.payload == payload.as_bytes())
            .unwrap()
            .clone()
    };
    consumer
        .commit_batch(&[by_payload("a-2"), by_payload("b-2")])
        .await
        .unwrap();
    let one_left = lag(&*consumer, &group, &topic).await;
    let other = new_group();
    let another_group = topics.subscribe(&other, &[&topic]).await.unwrap();
    let from_the_start = lag(&*another_group, &other, &topic).await;
    consumer.commit(&by_payload("a-3")).await.unwrap();

    assert_eq!(caught_up, 0, "the probes were committed");
    assert_eq!(behind, 5, "received or not, nothing was committed");
    assert_eq!(one_left, 1, "a-3");
    assert_eq!(from_the_start, probes + 5);
    assert_eq!(lag(&*consumer, &group, &topic).await, 0);
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
    a_paused_partition_delivers_nothing_while_the_others_keep_delivering(topics).await;
    after_resume_the_paused_record_comes_first_then_the_rest_in_order_once_each(topics).await;
    resuming_a_partition_that_is_not_paused_changes_nothing(topics).await;
    a_paused_record_that_was_not_committed_goes_to_the_next_member(topics).await;
    a_rebalance_ends_a_pause(topics).await;
    a_batch_holds_what_has_arrived_up_to_its_size_in_order(topics).await;
    a_batch_commit_covers_each_partition_up_to_its_last_record(topics).await;
    the_lag_is_what_the_group_has_not_committed_on_every_partition(topics).await;
}
