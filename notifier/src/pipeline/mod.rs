//! The delivery pipeline: from an accepted notification to a provider, through topics.
//!
//! ```text
//!  POST /v1/notifications
//!        │ one transaction: notification, deliveries (pending), outbox row
//!        ▼
//!     outbox ──relay──▶ <p>.intake ──▶ router ──▶ <p>.email ─┐
//!                       (key: user)    opt-outs,  <p>.sms    ├─▶ channel workers ──▶ providers
//!                                      throttle   <p>.push   │        │ retryable
//!                                                 <p>.webhook┘        ▼
//!                                              <p>.<channel>.retry.<delay> (5s, 30s, 5m)
//!                                                 paused until due ───┘ │ permanent, or
//!                                                                       ▼ retries exhausted
//!     POST /v1/dlq/{id}/redrive ──outbox──▶ <p>.<channel>     <p>.dead + dead_letters row
//! ```
//!
//! `<p>` is the topic prefix (`notifications` by default). Every topic is keyed by user id, so a
//! user's notifications stay in order through each stage, and the load spreads over partitions by
//! user.
//!
//! Why each piece:
//! - **The outbox** ([`platform::outbox`]): intake answers 202 only once the notification is
//!   stored, and the message to the intake topic is stored in the same transaction. Publishing from
//!   the request after the commit would lose the notification if the process died in between.
//! - **The router** ([`router`]) applies preferences and the per-user throttle at send time (so an
//!   opt-out made after intake still counts), and fans a notification out to one topic per channel.
//! - **One topic and one consumer group per channel** ([`worker`]): an SMS provider that is down or
//!   slow fills the SMS topics and holds up only SMS workers; email keeps flowing.
//! - **Retry topics instead of retrying in place.** A worker that slept and retried in its poll
//!   loop would block every message behind the failing one in its partition, and would stop
//!   polling long enough for Kafka to expel it from its group. Instead the failed job goes to the
//!   next retry topic with a due time, its offset is committed, and the worker moves on. The retry
//!   topic's consumer pauses a partition whose head is not due yet and resumes it when it is
//!   ([`platform::topic::consume`]); other partitions, and the main topic, keep moving. Each retry topic has one
//!   fixed delay, so a partition's jobs come due in the order they sit in it. This is Uber's
//!   "reliable reprocessing" design.
//! - **Dead letters**: a permanent failure (a 4xx other than 408 and 429, an invalid address) or
//!   the last retry's failure goes to the dead-letter topic (for whatever watches it) and into the
//!   `dead_letters` table, in one transaction through the outbox; `POST /v1/dlq/{id}/redrive` puts
//!   it back on its channel's topic, once.
//!
//! Delivery is at-least-once on every topic: a consumer commits a record's offset only after its
//! outcome is recorded in the database, so a crash replays it. What keeps a replay from reaching
//! a person twice:
//! 1. the worker skips a job whose delivery is already final in the database;
//! 2. every provider call carries `<notification id>:<channel>` as its idempotency key, so a call
//!    that reached the provider but whose outcome was never recorded (a crash between the two) is
//!    answered, not delivered, the second time.
//!
//! # Layout
//! - The consumer loop every stage runs is [`platform::topic::consume`]: batches, commit after
//!   handling, pause until due, back off on errors without skipping.
//! - [`router`]: the intake topic's consumer.
//! - [`worker`]: the channel and retry topics' consumers, and the retry and dead-letter decisions.
//! - The messages on the topics, and their names, are in [`crate::messages`].

pub mod router;
pub mod worker;

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use platform::{
    clock::Clock,
    outbox::Relay,
    shutdown::CancellationToken,
    topic::{Producer, Topics},
};
use tokio::{sync::Notify, task::JoinSet};

use crate::{
    domain::{Channel, Throttle},
    messages::Topology,
    providers::Providers,
    store::NotificationStore,
};

/// How the pipeline behaves; see `settings.rs` for the variables and their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSettings {
    pub topic_prefix: String,
    /// Partitions of each topic the pipeline creates.
    pub partitions: u32,
    /// One retry topic per delay, tried in order; after the last, dead letters.
    pub retry_delays: Vec<Duration>,
    pub throttle: Throttle,
    /// Consumers per channel topic (each takes its share of the partitions).
    pub workers_per_channel: usize,
    /// The most records a stage handles at once: one database statement, one publish and one
    /// commit for all of them, and (for a worker) that many provider calls in flight.
    pub batch_size: usize,
    /// The payments service's events, for receipts; `None` to send none.
    pub payments_topic: Option<String>,
    /// How often the outbox relay looks for rows besides being woken.
    pub relay_interval: Duration,
}

/// What every stage shares.
pub struct Context {
    pub store: Arc<dyn NotificationStore>,
    pub providers: Providers,
    pub producer: Arc<dyn Producer>,
    pub clock: Arc<dyn Clock>,
    pub topology: Topology,
    pub settings: PipelineSettings,
    /// Wakes the outbox relay, after writing an outbox row.
    pub wake: Arc<Notify>,
}

/// Creates every topic the pipeline uses, if missing.
pub async fn ensure_topics(topics: &dyn Topics, settings: &PipelineSettings) -> anyhow::Result<()> {
    let topology = Topology::new(&settings.topic_prefix);
    let mut names = vec![topology.intake(), topology.dead()];
    for channel in Channel::ALL {
        names.push(topology.channel(channel));
        names.extend(
            settings
                .retry_delays
                .iter()
                .map(|delay| topology.retry(channel, *delay)),
        );
    }
    if let Some(payments) = &settings.payments_topic {
        // Normally the payments service made it; creating it here too lets either start first.
        names.push(payments.clone());
    }
    for name in names {
        topics
            .ensure_topic(&name, settings.partitions)
            .await
            .with_context(|| format!("creating the topic {name}"))?;
    }
    Ok(())
}

/// The running pipeline: the outbox relay and every consumer, as tasks.
pub struct Pipeline {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Pipeline {
    /// Joins every consumer group and starts `relay` (the outbox's, woken by `context.wake`), the
    /// router, and the channel and retry workers.
    pub async fn start(
        context: Arc<Context>,
        topics: &dyn Topics,
        relay: Relay,
    ) -> anyhow::Result<Self> {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let topology = &context.topology;
        let settings = &context.settings;

        tasks.spawn(relay.run(settings.relay_interval, stop.clone()));

        // One router member per partition of the intake topic: a member handles one batch at a
        // time, so a single member would carry every partition's records in turn (it was the
        // pipeline's bottleneck, DESIGN.md §10), and a member beyond the partition count would
        // get none.
        for _ in 0..settings.partitions.max(1) {
            let consumer = topics
                .subscribe(&topology.group("router"), &[&topology.intake()])
                .await?;
            tasks.spawn(router::run(context.clone(), consumer, stop.clone()));
        }

        for channel in Channel::ALL {
            for _ in 0..settings.workers_per_channel.max(1) {
                let consumer = topics
                    .subscribe(
                        &topology.group(channel.as_str()),
                        &[&topology.channel(channel)],
                    )
                    .await?;
                tasks.spawn(worker::run(
                    context.clone(),
                    channel,
                    consumer,
                    stop.clone(),
                ));
            }
            // One consumer reads all of a channel's retry topics: pausing is per partition, so a
            // 5-minute job does not hold up a 5-second one.
            let retries: Vec<String> = settings
                .retry_delays
                .iter()
                .map(|delay| topology.retry(channel, *delay))
                .collect();
            if !retries.is_empty() {
                let names: Vec<&str> = retries.iter().map(String::as_str).collect();
                let consumer = topics
                    .subscribe(&topology.group(&format!("{channel}.retry")), &names)
                    .await?;
                tasks.spawn(worker::run(
                    context.clone(),
                    channel,
                    consumer,
                    stop.clone(),
                ));
            }
        }
        Ok(Self { stop, tasks })
    }

    /// Runs `task` beside the stages, stopped and killed with them: a consumer outside the
    /// pipeline (the receipts) that should start and stop when it does.
    pub fn spawn<F>(&mut self, task: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task(self.stop.clone()));
    }

    /// Stops every stage between records (a record being handled is finished and committed
    /// first), and waits for them.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Kills every stage wherever it is, as a crash would: a record being handled is neither
    /// finished nor committed. For tests of what a crash loses (nothing).
    pub async fn kill(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
