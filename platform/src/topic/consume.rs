//! The consumer loop every system's consumers run: receive a batch, handle it, commit; pause what
//! is not due; never skip a record because handling it failed. The notifier's stages
//! (`notifier/src/pipeline`) and the feed's fan-out workers (`feed-service/src/fanout.rs`) run it.
//!
//! - **Batches.** The loop takes the records that are already here (up to the caller's batch size;
//!   at least one, and never waiting for more) and hands them to the handler together, so that a
//!   handler pays its database queries, its publish and its commit once per batch rather than once
//!   per record. A lone record is handled at once; under load, batches grow by themselves. The
//!   batch may hold several partitions; each partition's records are in order, and the handlers
//!   keep a key's records in that order.
//! - **Commit after handling.** The offsets are committed once the handler returns, that is once
//!   every outcome in the batch is stored: one commit for the batch, covering the last record of
//!   each partition. A crash before that replays the batch (at-least-once), and the handlers are
//!   written to make a replay harmless.
//! - **Not due yet: pause, do not sleep.** A record that is not due (a retry job, say) pauses its
//!   partition ([`Consumer::pause`] rewinds it to that record) and a timer resumes it at the due
//!   time, while the loop keeps receiving from the other partitions. The records of that partition
//!   before it are committed; those after it come again after the resume, and the handler must
//!   leave them alone (it answers [`Handled::NotDue`] for them too). Sleeping here instead would
//!   stall every partition this consumer holds, and with Kafka, a consumer that stops polling for
//!   five minutes is expelled from its group.
//! - **A failed handler is retried, not skipped.** An error (the database is down, the broker
//!   refused a publish), or a panic, is retried on the same batch with a growing pause, because
//!   the records behind it in the partition must not overtake it and a committed record is gone.
//!   The handlers' work is idempotent, so what the failed try did finish is harmless to do again.
//!   A panic is a bug; it stalls the consumer, loudly (`topic_handler_errors_total{consumer}` and
//!   an error log per try), rather than killing it, which would hand the records to the next
//!   member to panic on in turn. Messages that can never succeed are not errors: the handlers turn
//!   them into outcomes (a dead letter, a logged poison message).
//! - **A failed pause is retried before anything else is received**: carrying on would receive
//!   the records behind the unpaused one and could commit past it. A failed resume is retried
//!   a second later.
//! - **A failed receive backs off**, from 100 ms doubling to 5 s, and starts again from 100 ms
//!   once a receive succeeds. A broker that is down fails every receive at once (the embedded
//!   transport's fault switch, `faulty.rs`) or after a while (Kafka): trying again at once would
//!   spin a core and write a warning per try, and a fixed short pause still writes ten a second
//!   for as long as the outage lasts.
//! - **The lag is reported** beside the loop: every [`LAG_INTERVAL`], the gauge
//!   `topic_consumer_lag{system, group, topic}` is set to the records the consumer's group has not
//!   committed ([`Consumer::lag`]), on every partition of each topic it reads. Every member of a
//!   group sets the same value (each measures the whole group), so a chart takes the series as
//!   it is, or the maximum over instances, never the sum. A measurement that fails (the broker is
//!   down) leaves the gauge where it was.

use std::{future::Future, panic::AssertUnwindSafe, pin::Pin, time::Duration};

use futures::{FutureExt, StreamExt, stream::FuturesUnordered};

use super::{Consumer, Delivery, Lag};
use crate::{problem::error_chain, shutdown::CancellationToken};

/// What a handler did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Finished with: commit it.
    Done,
    /// Not to be handled for this long: pause its partition until then.
    NotDue(Duration),
}

type Resume = Pin<Box<dyn Future<Output = (String, i32)> + Send>>;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const RESUME_RETRY: Duration = Duration::from_secs(1);
/// How often the loop measures its group's lag. With Kafka a measurement is a few small requests
/// (metadata, committed offsets, a watermark per partition); a chart refreshed every few seconds
/// needs no more.
pub const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// Runs `handle` on every batch of at most `batch_size` records `consumer` receives, until
/// `stop`, and reports the group's lag beside it. The handler answers for each record of the
/// batch, in the batch's order. `name` labels the consumer in logs and metrics, and `system`
/// (the system it belongs to: `notifier`) labels its metrics, so that where several systems
/// share one metrics registry (the lab) each of their consumers is told apart.
pub async fn run<F, Fut>(
    system: &'static str,
    name: &str,
    consumer: Box<dyn Consumer>,
    batch_size: usize,
    stop: CancellationToken,
    handle: F,
) where
    F: Fn(Vec<Delivery>) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<Handled>>>,
{
    tokio::join!(
        receive(system, name, &*consumer, batch_size, &stop, handle),
        report_lag(system, name, &*consumer, &stop),
    );
}

async fn receive<F, Fut>(
    system: &'static str,
    name: &str,
    consumer: &dyn Consumer,
    batch_size: usize,
    stop: &CancellationToken,
    handle: F,
) where
    F: Fn(Vec<Delivery>) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<Handled>>>,
{
    let mut resumes: FuturesUnordered<Resume> = FuturesUnordered::new();
    let mut receive_backoff = FIRST_BACKOFF;
    loop {
        let batch = tokio::select! {
            _ = stop.cancelled() => return,
            Some((topic, partition)) = resumes.next(), if !resumes.is_empty() => {
                if let Err(err) = consumer.resume(&topic, partition).await {
                    tracing::warn!(consumer = name, %topic, partition, error = %error_chain(&err), "resuming a partition failed; trying again in a second");
                    resumes.push(resume_after(RESUME_RETRY, topic, partition));
                }
                continue;
            }
            received = consumer.recv_batch(batch_size.max(1)) => match received {
                Ok(batch) => {
                    receive_backoff = FIRST_BACKOFF;
                    batch
                }
                Err(err) => {
                    // Kafka reports a lost broker connection here and reconnects by itself.
                    tracing::warn!(consumer = name, error = %error_chain(&err), retry_in = ?receive_backoff, "receiving failed");
                    if pause(stop, receive_backoff).await.is_err() {
                        return;
                    }
                    receive_backoff = (receive_backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };

        let mut backoff = FIRST_BACKOFF;
        let handled = loop {
            let handled = AssertUnwindSafe(handle(batch.clone()))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the handler panicked")))
                .and_then(|handled| {
                    anyhow::ensure!(
                        handled.len() == batch.len(),
                        "the handler answered for {} of {} records",
                        handled.len(),
                        batch.len()
                    );
                    Ok(handled)
                });
            match handled {
                Ok(handled) => break handled,
                Err(err) => {
                    metrics::counter!("topic_handler_errors_total", "system" => system, "consumer" => name.to_owned())
                        .increment(1);
                    let first = &batch[0];
                    tracing::warn!(
                        consumer = name, records = batch.len(), topic = %first.topic,
                        partition = first.partition, offset = first.offset,
                        error = %error_chain(&*err),
                        "handling a batch failed; trying it again"
                    );
                    if pause(stop, backoff).await.is_err() {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };

        let (done, not_due) = settle(&batch, &handled);
        // A commit that fails leaves the records to be received again (by this consumer after a
        // rebalance, or by the next one): duplicates, which the handlers absorb.
        if let Err(err) = consumer.commit_batch(&done).await {
            tracing::warn!(consumer = name, error = %error_chain(&err), "committing failed");
        }
        for (delivery, wait) in not_due {
            let mut backoff = FIRST_BACKOFF;
            while let Err(err) = consumer.pause(delivery).await {
                tracing::warn!(consumer = name, error = %error_chain(&err), "pausing a partition failed; trying again");
                if pause(stop, backoff).await.is_err() {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            resumes.push(resume_after(
                wait,
                delivery.topic.clone(),
                delivery.partition,
            ));
        }
    }
}

/// Sets `topic_consumer_lag{system, group, topic}` every [`LAG_INTERVAL`] until `stop`.
async fn report_lag(
    system: &'static str,
    name: &str,
    consumer: &dyn Consumer,
    stop: &CancellationToken,
) {
    let mut ticks = tokio::time::interval(LAG_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let measured = tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => tokio::select! {
                _ = stop.cancelled() => return,
                measured = consumer.lag() => measured,
            },
        };
        match measured {
            Ok(lags) => {
                for Lag {
                    group,
                    topic,
                    records,
                } in lags
                {
                    metrics::gauge!("topic_consumer_lag", "system" => system, "group" => group, "topic" => topic)
                        .set(records as f64);
                }
            }
            // The receive loop warns about a broker that is down; once is enough.
            Err(err) => {
                tracing::debug!(consumer = name, error = %error_chain(&err), "measuring the lag failed");
            }
        }
    }
}

/// Sorts a handled batch into what to commit (per partition, the last record before its first
/// not-due one) and where to pause (each partition's first not-due record, with its wait).
fn settle<'a>(
    batch: &'a [Delivery],
    handled: &[Handled],
) -> (Vec<Delivery>, Vec<(&'a Delivery, Duration)>) {
    let same_partition =
        |a: &Delivery, b: &Delivery| a.topic == b.topic && a.partition == b.partition;
    let mut done: Vec<&Delivery> = Vec::new();
    let mut not_due: Vec<(&Delivery, Duration)> = Vec::new();
    for (delivery, handled) in batch.iter().zip(handled) {
        if not_due
            .iter()
            .any(|(paused, _)| same_partition(paused, delivery))
        {
            continue;
        }
        match *handled {
            Handled::Done => match done.iter_mut().find(|d| same_partition(d, delivery)) {
                Some(last) => *last = delivery,
                None => done.push(delivery),
            },
            Handled::NotDue(wait) => not_due.push((delivery, wait)),
        }
    }
    (done.into_iter().cloned().collect(), not_due)
}

/// A timer that yields `(topic, partition)` after `wait`, to resume it.
fn resume_after(wait: Duration, topic: String, partition: i32) -> Resume {
    Box::pin(async move {
        tokio::time::sleep(wait).await;
        (topic, partition)
    })
}

/// Waits `duration`, or fails at once if `stop` comes first.
async fn pause(stop: &CancellationToken, duration: Duration) -> Result<(), ()> {
    tokio::select! {
        _ = stop.cancelled() => Err(()),
        _ = tokio::time::sleep(duration) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use async_trait::async_trait;
    use tokio::sync::watch;

    use super::*;
    use crate::topic::{MemoryTopics, Message, Producer as _, TopicError, Topics as _};

    fn record(partition: i32, offset: i64) -> Delivery {
        Delivery {
            topic: "t".to_owned(),
            partition,
            offset,
            key: Vec::new(),
            payload: Vec::new(),
            headers: Vec::new(),
        }
    }

    fn at(deliveries: &[Delivery]) -> Vec<(i32, i64)> {
        deliveries
            .iter()
            .map(|delivery| (delivery.partition, delivery.offset))
            .collect()
    }

    #[test]
    fn a_batch_commits_each_partition_up_to_its_last_record() {
        let batch = [record(0, 4), record(1, 7), record(0, 5), record(1, 8)];

        let (done, not_due) = settle(&batch, &[Handled::Done; 4]);

        assert_eq!(at(&done), [(0, 5), (1, 8)]);
        assert!(not_due.is_empty());
    }

    #[test]
    fn a_not_due_record_pauses_its_partition_and_nothing_after_it_there_is_committed() {
        let wait = Duration::from_secs(5);
        let batch = [record(0, 4), record(0, 5), record(1, 7), record(0, 6)];
        let handled = [
            Handled::Done,
            Handled::NotDue(wait),
            Handled::Done,
            // Answered for, but behind the paused record: it comes again after the resume.
            Handled::Done,
        ];

        let (done, not_due) = settle(&batch, &handled);

        assert_eq!(at(&done), [(0, 4), (1, 7)]);
        let paused: Vec<_> = not_due
            .iter()
            .map(|(delivery, wait)| (delivery.partition, delivery.offset, *wait))
            .collect();
        assert_eq!(paused, [(0, 5, wait)]);
    }

    /// A consumer whose broker is gone: every receive fails at once.
    #[derive(Default)]
    struct Unreachable {
        receives: AtomicUsize,
    }

    fn gone() -> TopicError {
        crate::fault::Unreachable {
            dependency: "broker",
        }
        .into()
    }

    #[async_trait]
    impl Consumer for Arc<Unreachable> {
        async fn recv(&self) -> Result<Delivery, TopicError> {
            self.receives.fetch_add(1, Ordering::SeqCst);
            Err(gone())
        }

        async fn commit(&self, _: &Delivery) -> Result<(), TopicError> {
            Err(gone())
        }

        async fn pause(&self, _: &Delivery) -> Result<(), TopicError> {
            Ok(())
        }

        async fn resume(&self, _: &str, _: i32) -> Result<(), TopicError> {
            Ok(())
        }

        async fn lag(&self) -> Result<Vec<Lag>, TopicError> {
            Err(gone())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_consumer_whose_broker_is_down_backs_off_instead_of_spinning() {
        let consumer = Arc::new(Unreachable::default());
        let stop = CancellationToken::new();
        let running = tokio::spawn(run(
            "test-system",
            "test",
            Box::new(consumer.clone()),
            10,
            stop.clone(),
            |_| async { Ok(Vec::new()) },
        ));

        tokio::time::sleep(Duration::from_secs(60)).await;
        stop.cancel();
        running.await.unwrap();

        // Backing off from 100 ms to 5 s, a minute holds 7 tries to reach 5 s and 11 more at
        // it; a fixed 100 ms would have made 600.
        let receives = consumer.receives.load(Ordering::SeqCst);
        assert!(
            (10..=20).contains(&receives),
            "{receives} tries in a minute"
        );
    }

    /// `topic_consumer_lag{group, topic}` as the recorder renders it now.
    fn reported_lag(group: &str, topic: &str) -> Option<f64> {
        let series = format!(
            r#"topic_consumer_lag{{system="test-system",group="{group}",topic="{topic}"}} "#
        );
        crate::metrics::handle()
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(&series)?.parse().ok())
    }

    #[tokio::test(start_paused = true)]
    async fn the_lag_is_reported_until_the_records_are_handled_and_committed() {
        crate::metrics::install();
        let topics = MemoryTopics::new();
        topics.ensure_topic("t", 2).await.unwrap();
        let group = format!("lag-test-{}", uuid::Uuid::new_v4().simple());
        let consumer = topics.subscribe(&group, &["t"]).await.unwrap();
        let messages = (0..3)
            .map(|i| Message::new("t", format!("key-{i}"), "x"))
            .collect();
        topics.publish_all(messages).await.unwrap();
        let (release, released) = watch::channel(false);
        let stop = CancellationToken::new();
        let running = tokio::spawn({
            let stop = stop.clone();
            async move {
                run("test-system", "test", consumer, 10, stop, |batch| {
                    let mut released = released.clone();
                    async move {
                        released.wait_for(|&released| released).await?;
                        Ok(vec![Handled::Done; batch.len()])
                    }
                })
                .await;
            }
        });

        tokio::time::sleep(LAG_INTERVAL / 2).await;
        let while_handling = reported_lag(&group, "t");
        release.send_replace(true);
        tokio::time::sleep(LAG_INTERVAL * 2).await;
        let after_the_commit = reported_lag(&group, "t");
        stop.cancel();
        running.await.unwrap();

        assert_eq!(while_handling, Some(3.0));
        assert_eq!(after_the_commit, Some(0.0));
    }
}
