//! Topics behind a fault switch ([`crate::fault`]), the system's `broker`: every request that
//! would reach a broker passes the switch first, so the switch can make the broker slow or
//! unreachable, on Kafka and on the embedded transport alike.
//!
//! What passes it: creating a topic, subscribing, each publish (a batch once: it is one request,
//! as the inner producer sends it), each receive, each commit, and measuring the lag. What does
//! not: pausing and resuming a partition, which are the client's own bookkeeping (librdkafka
//! pauses and seeks locally), so that a switched-off broker does not fail what a real outage
//! leaves working.
//!
//! Switched off, a consumer behaves as a Kafka client with no broker does: its receive fails
//! (and `consume::run` backs off), and it yields nothing it did not have before. A receive that
//! was already waiting when the switch went off, and is then handed a record (published by a
//! producer that is not behind this switch: another system's), puts the record back, rewinding
//! its partition to it (a pause and a resume), and fails: the record comes again once the switch
//! is undone, and nothing is processed through a broker that is down.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Consumer, Delivery, Lag, Message, Producer, TopicError, Topics};
use crate::fault::{FaultSwitch, Unreachable};

pub struct FaultyTopics {
    inner: Arc<dyn Topics>,
    switch: FaultSwitch,
}

impl FaultyTopics {
    /// `inner` behind `switch`.
    pub fn new(inner: Arc<dyn Topics>, switch: FaultSwitch) -> Self {
        Self { inner, switch }
    }
}

#[async_trait]
impl Topics for FaultyTopics {
    async fn ensure_topic(&self, name: &str, partitions: u32) -> Result<(), TopicError> {
        self.switch.pass().await?;
        self.inner.ensure_topic(name, partitions).await
    }

    fn producer(&self) -> Arc<dyn Producer> {
        Arc::new(FaultyProducer {
            inner: self.inner.producer(),
            switch: self.switch.clone(),
        })
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Consumer>, TopicError> {
        self.switch.pass().await?;
        Ok(Box::new(FaultyConsumer {
            inner: self.inner.subscribe(group, topics).await?,
            switch: self.switch.clone(),
        }))
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

struct FaultyProducer {
    inner: Arc<dyn Producer>,
    switch: FaultSwitch,
}

#[async_trait]
impl Producer for FaultyProducer {
    async fn publish(&self, message: Message) -> Result<(), TopicError> {
        self.switch.pass().await?;
        self.inner.publish(message).await
    }

    async fn publish_all(&self, messages: Vec<Message>) -> Result<(), TopicError> {
        self.switch.pass().await?;
        self.inner.publish_all(messages).await
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

struct FaultyConsumer {
    inner: Box<dyn Consumer>,
    switch: FaultSwitch,
}

impl FaultyConsumer {
    /// Fails, putting `received` back, if the switch went off while the receive waited (see the
    /// module docs).
    async fn unless_cut_off(&self, received: &[Delivery]) -> Result<(), TopicError> {
        if !self.switch.get().unreachable {
            return Ok(());
        }
        for first in first_per_partition(received) {
            self.inner.pause(first).await?;
            self.inner.resume(&first.topic, first.partition).await?;
        }
        Err(Unreachable {
            dependency: self.switch.dependency(),
        }
        .into())
    }
}

/// Of `deliveries`, the first of each partition, in the order their partitions first appear.
fn first_per_partition(deliveries: &[Delivery]) -> Vec<&Delivery> {
    let mut first: Vec<&Delivery> = Vec::new();
    for delivery in deliveries {
        let seen = first
            .iter()
            .any(|seen| seen.topic == delivery.topic && seen.partition == delivery.partition);
        if !seen {
            first.push(delivery);
        }
    }
    first
}

#[async_trait]
impl Consumer for FaultyConsumer {
    async fn recv(&self) -> Result<Delivery, TopicError> {
        self.switch.pass().await?;
        let delivery = self.inner.recv().await?;
        self.unless_cut_off(std::slice::from_ref(&delivery)).await?;
        Ok(delivery)
    }

    async fn recv_batch(&self, max: usize) -> Result<Vec<Delivery>, TopicError> {
        self.switch.pass().await?;
        let batch = self.inner.recv_batch(max).await?;
        self.unless_cut_off(&batch).await?;
        Ok(batch)
    }

    async fn commit(&self, delivery: &Delivery) -> Result<(), TopicError> {
        self.switch.pass().await?;
        self.inner.commit(delivery).await
    }

    async fn commit_batch(&self, deliveries: &[Delivery]) -> Result<(), TopicError> {
        self.switch.pass().await?;
        self.inner.commit_batch(deliveries).await
    }

    async fn pause(&self, delivery: &Delivery) -> Result<(), TopicError> {
        self.inner.pause(delivery).await
    }

    async fn resume(&self, topic: &str, partition: i32) -> Result<(), TopicError> {
        self.inner.resume(topic, partition).await
    }

    async fn lag(&self) -> Result<Vec<Lag>, TopicError> {
        self.switch.pass().await?;
        self.inner.lag().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::FutureExt as _;

    use super::*;
    use crate::{
        fault::Fault,
        topic::{MemoryTopics, conformance},
    };

    const OFF: Fault = Fault {
        latency_ms: 0,
        unreachable: true,
    };

    fn behind_switch() -> (MemoryTopics, FaultyTopics, FaultSwitch) {
        let inner = MemoryTopics::new();
        let switch = FaultSwitch::new("test-system", "broker");
        let faulty = FaultyTopics::new(Arc::new(inner.clone()), switch.clone());
        (inner, faulty, switch)
    }

    fn is_fault<T: std::fmt::Debug>(result: Result<T, TopicError>) -> bool {
        matches!(
            result,
            Err(TopicError::Fault(Unreachable {
                dependency: "broker"
            }))
        )
    }

    #[tokio::test]
    async fn healthy_it_behaves_like_every_transport() {
        let (_, faulty, _) = behind_switch();
        conformance::all(&faulty).await;
    }

    #[tokio::test]
    async fn switched_off_nothing_is_published_received_or_committed_until_it_is_undone() {
        let (_, faulty, switch) = behind_switch();
        faulty.ensure_topic("t", 1).await.unwrap();
        let consumer = faulty.subscribe("g", &["t"]).await.unwrap();
        let producer = faulty.producer();
        producer
            .publish(Message::new("t", "k", "before"))
            .await
            .unwrap();
        let before = consumer.recv().await.unwrap();

        switch.set(OFF);
        let refused = producer.publish(Message::new("t", "k", "during")).await;
        let received = consumer.recv().await;
        let committed = consumer.commit(&before).await;
        let lag = consumer.lag().await;
        switch.set(Fault::default());

        assert!(is_fault(refused));
        assert!(is_fault(received));
        assert!(is_fault(committed));
        assert!(is_fault(lag));
        // Undone: the record before the outage is still to commit, and nothing else was written.
        assert_eq!(consumer.lag().await.unwrap()[0].records, 1);
        consumer.commit(&before).await.unwrap();
        assert_eq!(consumer.lag().await.unwrap()[0].records, 0);
        assert!(consumer.recv().now_or_never().is_none());
    }

    #[tokio::test]
    async fn a_record_handed_to_a_waiting_receive_after_the_switch_went_off_comes_after_the_undo() {
        let (inner, faulty, switch) = behind_switch();
        faulty.ensure_topic("t", 2).await.unwrap();
        let consumer = faulty.subscribe("g", &["t"]).await.unwrap();
        let waiting = tokio::spawn(async move {
            let received = consumer.recv_batch(10).await;
            (consumer, received)
        });
        tokio::task::yield_now().await;

        switch.set(OFF);
        // Another system's producer, not behind this switch.
        inner
            .publish_all(vec![
                Message::new("t", "a", "a-1"),
                Message::new("t", "b", "b-1"),
            ])
            .await
            .unwrap();
        let (consumer, received) = waiting.await.unwrap();
        switch.set(Fault::default());

        assert!(is_fault(received));
        let mut again: Vec<_> = consumer.recv_batch(10).await.unwrap();
        while again.len() < 2 {
            again.push(consumer.recv().await.unwrap());
        }
        let mut payloads: Vec<_> = again.iter().map(|d| d.payload.clone()).collect();
        payloads.sort();
        assert_eq!(payloads, [b"a-1".to_vec(), b"b-1".to_vec()]);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_is_waited_before_each_publish() {
        let (_, faulty, switch) = behind_switch();
        faulty.ensure_topic("t", 1).await.unwrap();
        switch.set(Fault {
            latency_ms: 300,
            unreachable: false,
        });
        let started = tokio::time::Instant::now();

        faulty
            .producer()
            .publish(Message::new("t", "k", "slow"))
            .await
            .unwrap();

        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }
}
