//! The embedded transport's index: each partition is a `Vec` of records in process memory, and
//! each consumer group a map of committed offsets plus the list of its members.
//!
//! It gives the semantics the systems rely on (per-key order, groups that share partitions,
//! commits that outlive a consumer, redelivery of what was not committed) with nothing else
//! running. On its own it is not durable: records and commits go when the process does. That is
//! what `sqlite.rs` adds, writing through to a file and reading it back into a `MemoryTopics` on
//! start-up; on its own, [`MemoryTopics::new`] serves unit tests. Logs are never truncated, which
//! suits a demo process and is what retention settles in Kafka.
//!
//! One `std::sync::Mutex` around all of it: every operation is a few vector and map lookups with
//! no `await` under the lock (the same reasoning as `cache/memory.rs`). A waiting `recv` sleeps
//! on one `Notify` that every change (a publish, a member joining or leaving) wakes. Waking every
//! waiting consumer for every publish is wasteful in theory and immaterial at the rates one
//! process produces; per-partition wakers would be more code for no measurable gain.
//!
//! Rebalancing is *eager*, as in Kafka's default protocol: when a member joins or leaves, every
//! member of the group gives up its partitions and the new assignment starts from the group's
//! committed offsets. So anything received but not committed is delivered again, possibly to
//! another member: at-least-once, never lost.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{Consumer, Delivery, Lag, Message, Producer, TopicError, Topics};

/// The in-process transport. Clones share the same topics.
#[derive(Clone, Default)]
pub struct MemoryTopics {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled after every change a waiting consumer may care about.
    changed: Notify,
}

#[derive(Default)]
struct State {
    /// Topic name → partitions → records, a record's index being its offset.
    topics: HashMap<String, Vec<Vec<Delivery>>>,
    groups: HashMap<String, Group>,
    next_member_id: u64,
}

#[derive(Default)]
struct Group {
    /// By member id, which grows, so iteration is in joining order.
    members: BTreeMap<u64, Member>,
    /// (topic, partition) → the offset of the next record to process.
    committed: HashMap<(String, i32), i64>,
}

struct Member {
    topics: Vec<String>,
    /// The partitions assigned to this member, each with the offset it will receive next.
    cursors: Vec<Cursor>,
    /// Which cursor to try first, rotated so that a busy partition cannot starve the others.
    next_cursor: usize,
}

struct Cursor {
    topic: String,
    partition: i32,
    offset: i64,
    /// Set by `pause`: the cursor delivers nothing until `resume`. A rebalance builds new cursors,
    /// so it also ends every pause.
    paused: bool,
}

impl MemoryTopics {
    /// A private transport, seen only through this value and its clones, and gone with them (for
    /// unit tests).
    pub fn new() -> Self {
        Self::default()
    }

    /// Where `messages` would land if they were appended now, in order: the partition and the
    /// offset of each. `sqlite.rs` writes them to its file there before appending them here.
    pub(super) fn placements(&self, messages: &[Message]) -> Result<Vec<(i32, i64)>, TopicError> {
        let state = self.shared.state.lock().unwrap();
        let mut ends: HashMap<(&str, usize), i64> = HashMap::new();
        messages
            .iter()
            .map(|message| {
                let partitions = state
                    .topics
                    .get(&message.topic)
                    .ok_or_else(|| TopicError::UnknownTopic(message.topic.clone()))?;
                let partition = partition_for(&message.key, partitions.len());
                let end = ends
                    .entry((&message.topic, partition))
                    .or_insert(partitions[partition].len() as i64);
                let offset = *end;
                *end += 1;
                Ok((partition as i32, offset))
            })
            .collect()
    }

    /// Puts back a record read from a file, which must be the next one of its partition.
    pub(super) fn restore_record(&self, record: Delivery) -> Result<(), TopicError> {
        let mut state = self.shared.state.lock().unwrap();
        let log = state
            .topics
            .get_mut(&record.topic)
            .and_then(|partitions| partitions.get_mut(record.partition as usize))
            .ok_or_else(|| {
                TopicError::Damaged(format!(
                    "a record of {} partition {}, which does not exist",
                    record.topic, record.partition
                ))
            })?;
        if record.offset != log.len() as i64 {
            return Err(TopicError::Damaged(format!(
                "{} partition {} jumps from offset {} to {}",
                record.topic,
                record.partition,
                log.len() as i64 - 1,
                record.offset
            )));
        }
        log.push(record);
        Ok(())
    }

    /// Puts back a group's commit read from a file.
    pub(super) fn restore_commit(&self, group: &str, topic: &str, partition: i32, next: i64) {
        let mut state = self.shared.state.lock().unwrap();
        let group = state.groups.entry(group.to_owned()).or_default();
        group.committed.insert((topic.to_owned(), partition), next);
    }
}

impl std::fmt::Debug for MemoryTopics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.state.lock().unwrap();
        f.debug_struct("MemoryTopics")
            .field("topics", &state.topics.len())
            .field("groups", &state.groups.len())
            .finish()
    }
}

/// The partition for `key`: its 64-bit FNV-1a hash, mixed by murmur3's finalizer, modulo the
/// partition count.
///
/// The mapping is part of the file format: partitions outlive the process (`sqlite.rs`), and a
/// key that landed somewhere else after an upgrade would have its records in two partitions, out
/// of order. So not `std`'s `DefaultHasher`, whose algorithm may change between Rust releases,
/// but functions fixed by their specifications, in a few lines. FNV-1a alone spreads badly: keys
/// that differ in their last character (`user-1`, `user-2`) differ in a few middle bits of the
/// hash and in neither end, so `hash % n` would put most of them in one partition; the finalizer
/// spreads every input bit over the whole word.
fn partition_for(key: &[u8], partitions: usize) -> usize {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash = key.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    (hash % partitions as u64) as usize
}

impl State {
    fn append(&mut self, message: Message) -> Result<(), TopicError> {
        let partitions = self
            .topics
            .get_mut(&message.topic)
            .ok_or_else(|| TopicError::UnknownTopic(message.topic.clone()))?;
        let partition = partition_for(&message.key, partitions.len());
        let log = &mut partitions[partition];
        log.push(Delivery {
            offset: log.len() as i64,
            partition: partition as i32,
            topic: message.topic,
            key: message.key,
            payload: message.payload,
            headers: message.headers,
        });
        Ok(())
    }

    /// The next record for `member` of `group`, advancing its cursor; `None` if it has read all
    /// of its partitions.
    fn next_for(&mut self, group: &str, member: u64) -> Option<Delivery> {
        let member = self.groups.get_mut(group)?.members.get_mut(&member)?;
        let count = member.cursors.len();
        for i in 0..count {
            let index = (member.next_cursor + i) % count;
            let cursor = &mut member.cursors[index];
            if cursor.paused {
                continue;
            }
            let log = &self.topics[&cursor.topic][cursor.partition as usize];
            if let Some(record) = log.get(cursor.offset as usize) {
                cursor.offset += 1;
                member.next_cursor = (index + 1) % count;
                return Some(record.clone());
            }
        }
        None
    }

    /// How far `group` is behind on each topic `member` reads; nothing if it is not a member.
    fn lag(&self, group: &str, member: u64) -> Vec<Lag> {
        let Some(state) = self.groups.get(group) else {
            return Vec::new();
        };
        let Some(member) = state.members.get(&member) else {
            return Vec::new();
        };
        member
            .topics
            .iter()
            .map(|topic| {
                let records = (self.topics[topic].iter().enumerate())
                    .map(|(partition, log)| {
                        let committed = (state.committed)
                            .get(&(topic.clone(), partition as i32))
                            .copied()
                            .unwrap_or(0);
                        (log.len() as i64 - committed).max(0) as u64
                    })
                    .sum();
                Lag {
                    group: group.to_owned(),
                    topic: topic.clone(),
                    records,
                }
            })
            .collect()
    }

    /// The cursor of `member` of `group` on `partition` of `topic`, if it is assigned one.
    fn cursor(
        &mut self,
        group: &str,
        member: u64,
        topic: &str,
        partition: i32,
    ) -> Option<&mut Cursor> {
        self.groups
            .get_mut(group)?
            .members
            .get_mut(&member)?
            .cursors
            .iter_mut()
            .find(|cursor| cursor.topic == topic && cursor.partition == partition)
    }
}

impl Group {
    /// Shares each topic's partitions round-robin among the members subscribed to it, every member
    /// starting from the committed offsets (see the module docs on eager rebalancing).
    fn rebalance(&mut self, topics: &HashMap<String, Vec<Vec<Delivery>>>) {
        let mut subscribers: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (&id, member) in &self.members {
            for topic in &member.topics {
                subscribers.entry(topic.clone()).or_default().push(id);
            }
        }
        for member in self.members.values_mut() {
            member.cursors.clear();
            member.next_cursor = 0;
        }
        for (topic, ids) in subscribers {
            for partition in 0..topics[&topic].len() {
                let offset = self
                    .committed
                    .get(&(topic.clone(), partition as i32))
                    .copied()
                    .unwrap_or(0);
                let owner = ids[partition % ids.len()];
                self.members.get_mut(&owner).unwrap().cursors.push(Cursor {
                    topic: topic.clone(),
                    partition: partition as i32,
                    offset,
                    paused: false,
                });
            }
        }
    }
}

#[async_trait]
impl Producer for MemoryTopics {
    async fn publish(&self, message: Message) -> Result<(), TopicError> {
        self.shared.state.lock().unwrap().append(message)?;
        self.shared.changed.notify_waiters();
        Ok(())
    }

    async fn publish_all(&self, messages: Vec<Message>) -> Result<(), TopicError> {
        let appended = {
            let mut state = self.shared.state.lock().unwrap();
            messages
                .into_iter()
                .try_for_each(|message| state.append(message))
        };
        // Even after an error: the messages before it were appended and may be awaited.
        self.shared.changed.notify_waiters();
        appended
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[async_trait]
impl Topics for MemoryTopics {
    async fn ensure_topic(&self, name: &str, partitions: u32) -> Result<(), TopicError> {
        if partitions == 0 {
            return Err(TopicError::NoPartitions);
        }
        let mut state = self.shared.state.lock().unwrap();
        state
            .topics
            .entry(name.to_owned())
            .or_insert_with(|| vec![Vec::new(); partitions as usize]);
        Ok(())
    }

    fn producer(&self) -> Arc<dyn Producer> {
        Arc::new(self.clone())
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Consumer>, TopicError> {
        let id = {
            let mut state = self.shared.state.lock().unwrap();
            if let Some(missing) = topics.iter().find(|t| !state.topics.contains_key(**t)) {
                return Err(TopicError::UnknownTopic((*missing).to_owned()));
            }
            let id = state.next_member_id;
            state.next_member_id += 1;
            let State {
                topics: logs,
                groups,
                ..
            } = &mut *state;
            let group = groups.entry(group.to_owned()).or_default();
            let member = Member {
                topics: topics.iter().map(|&topic| topic.to_owned()).collect(),
                cursors: Vec::new(),
                next_cursor: 0,
            };
            group.members.insert(id, member);
            group.rebalance(logs);
            id
        };
        // The other members' cursors moved back to the committed offsets: wake them.
        self.shared.changed.notify_waiters();
        Ok(Box::new(MemoryConsumer {
            shared: self.shared.clone(),
            group: group.to_owned(),
            id,
        }))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

struct MemoryConsumer {
    shared: Arc<Shared>,
    group: String,
    id: u64,
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn recv(&self) -> Result<Delivery, TopicError> {
        loop {
            // Created before looking, so a publish between the look and the `await` still wakes
            // this consumer (`notify_waiters` reaches every `Notified` that exists, polled or not).
            let changed = self.shared.changed.notified();
            let next = self
                .shared
                .state
                .lock()
                .unwrap()
                .next_for(&self.group, self.id);
            if let Some(delivery) = next {
                return Ok(delivery);
            }
            changed.await;
        }
    }

    async fn commit(&self, delivery: &Delivery) -> Result<(), TopicError> {
        let mut state = self.shared.state.lock().unwrap();
        let group = state.groups.entry(self.group.clone()).or_default();
        let committed = group
            .committed
            .entry((delivery.topic.clone(), delivery.partition))
            .or_insert(0);
        // Never backwards: a member that lost the partition in a rebalance may still commit an
        // older record it was processing; the group has moved past it.
        *committed = (*committed).max(delivery.offset + 1);
        Ok(())
    }

    async fn pause(&self, delivery: &Delivery) -> Result<(), TopicError> {
        let mut state = self.shared.state.lock().unwrap();
        // No cursor: the partition went to another member in a rebalance, which starts it from
        // the committed offset, so the record comes again without a rewind here.
        if let Some(cursor) =
            state.cursor(&self.group, self.id, &delivery.topic, delivery.partition)
        {
            cursor.offset = delivery.offset;
            cursor.paused = true;
        }
        Ok(())
    }

    async fn resume(&self, topic: &str, partition: i32) -> Result<(), TopicError> {
        let resumed = {
            let mut state = self.shared.state.lock().unwrap();
            match state.cursor(&self.group, self.id, topic, partition) {
                Some(cursor) if cursor.paused => {
                    cursor.paused = false;
                    true
                }
                _ => false,
            }
        };
        if resumed {
            // This consumer may be waiting in `recv` with nothing else to read.
            self.shared.changed.notify_waiters();
        }
        Ok(())
    }

    async fn lag(&self) -> Result<Vec<Lag>, TopicError> {
        Ok(self.shared.state.lock().unwrap().lag(&self.group, self.id))
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state.lock().unwrap();
            let State { topics, groups, .. } = &mut *state;
            if let Some(group) = groups.get_mut(&self.group) {
                group.members.remove(&self.id);
                group.rebalance(topics);
            }
        }
        // The departed member's partitions are someone else's now.
        self.shared.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, time::Duration};

    use super::*;
    use crate::topic::conformance;

    #[tokio::test]
    async fn the_memory_transport_behaves_like_every_transport() {
        conformance::all(&MemoryTopics::new()).await;
    }

    #[tokio::test]
    async fn publishing_to_a_missing_topic_is_an_error() {
        let topics = MemoryTopics::new();
        let published = topics.publish(Message::new("nowhere", "k", "v")).await;
        assert!(matches!(published, Err(TopicError::UnknownTopic(name)) if name == "nowhere"));
    }

    #[tokio::test]
    async fn a_topic_needs_a_partition() {
        let topics = MemoryTopics::new();
        assert!(matches!(
            topics.ensure_topic("t", 0).await,
            Err(TopicError::NoPartitions)
        ));
    }

    #[tokio::test]
    async fn members_of_a_group_share_the_partitions_and_each_record_goes_to_one() {
        let topics = MemoryTopics::new();
        topics.ensure_topic("t", 4).await.unwrap();
        let a = topics.subscribe("g", &["t"]).await.unwrap();
        let b = topics.subscribe("g", &["t"]).await.unwrap();
        let messages = (0..40)
            .map(|i| Message::new("t", format!("key-{i}"), format!("{i}")))
            .collect();
        topics.publish_all(messages).await.unwrap();

        let (from_a, from_b) = (drain(&*a).await, drain(&*b).await);

        let partitions = |deliveries: &[Delivery]| -> BTreeSet<i32> {
            deliveries
                .iter()
                .map(|delivery| delivery.partition)
                .collect()
        };
        assert_eq!(partitions(&from_a), BTreeSet::from([0, 2]));
        assert_eq!(partitions(&from_b), BTreeSet::from([1, 3]));
        assert_eq!(from_a.len() + from_b.len(), 40);
    }

    #[tokio::test]
    async fn when_a_member_leaves_the_rest_take_over_its_uncommitted_records() {
        let topics = MemoryTopics::new();
        topics.ensure_topic("t", 2).await.unwrap();
        let stays = topics.subscribe("g", &["t"]).await.unwrap();
        let leaves = topics.subscribe("g", &["t"]).await.unwrap();
        let messages = (0..20)
            .map(|i| Message::new("t", format!("key-{i}"), format!("{i}")))
            .collect();
        topics.publish_all(messages).await.unwrap();
        for delivery in drain(&*stays).await {
            stays.commit(&delivery).await.unwrap();
        }
        let left_uncommitted = drain(&*leaves).await;

        drop(leaves);

        assert_eq!(drain(&*stays).await, left_uncommitted);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_consumer_does_not_spin() {
        // With the clock paused, tokio moves time forward only when every task is idle. A
        // consumer that polled in a loop would never be idle, the hour would never pass, and
        // this test would hang instead of passing at once.
        let topics = MemoryTopics::new();
        topics.ensure_topic("t", 1).await.unwrap();
        let consumer = topics.subscribe("g", &["t"]).await.unwrap();

        let waited = tokio::time::timeout(Duration::from_secs(3600), consumer.recv()).await;

        assert!(waited.is_err(), "there was nothing to receive");
    }

    #[test]
    fn a_key_maps_to_the_same_partition_in_every_build() {
        // Computed once, independently (Python): a change here moves keys between partitions
        // that a file kept from an earlier build.
        assert_eq!(partition_for(b"payment-42", 8), 6);
        assert_eq!(partition_for(b"user-1", 8), 5);
        assert_eq!(partition_for(b"user-2", 8), 3);
        assert_eq!(partition_for(b"", 3), 2);
    }

    #[test]
    fn keys_spread_over_the_partitions() {
        let mut counts = [0; 4];
        for i in 0..1000 {
            counts[partition_for(format!("payment-{i}").as_bytes(), 4)] += 1;
        }
        assert!(counts.iter().all(|&count| count > 150), "{counts:?}");
    }

    #[tokio::test]
    async fn placements_are_where_an_append_puts_the_records() {
        let topics = MemoryTopics::new();
        topics.ensure_topic("t", 3).await.unwrap();
        topics
            .publish(Message::new("t", "key-0", "already there"))
            .await
            .unwrap();
        let messages: Vec<Message> = (0..12)
            .map(|i| Message::new("t", format!("key-{}", i % 4), format!("{i}")))
            .collect();

        let placed = topics.placements(&messages).unwrap();
        topics.publish_all(messages).await.unwrap();

        let consumer = topics.subscribe("g", &["t"]).await.unwrap();
        let mut landed: Vec<(i32, i64)> = drain(&*consumer)
            .await
            .into_iter()
            .filter(|delivery| delivery.payload != b"already there")
            .map(|delivery| (delivery.partition, delivery.offset))
            .collect();
        let mut placed = placed;
        placed.sort();
        landed.sort();
        assert_eq!(placed, landed);
    }

    /// Everything this consumer can receive now, without waiting.
    async fn drain(consumer: &dyn Consumer) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        while let Some(Ok(delivery)) = futures::FutureExt::now_or_never(consumer.recv()) {
            deliveries.push(delivery);
        }
        deliveries
    }
}
