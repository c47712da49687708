//! What any pipeline of this shape must do for a notification, with none of the notifier's own
//! work: the floor under the pipeline's cost, measured in the same run as the bare loop, so that
//! the ratio the issue sets can be read against what the issue's own requirements cost here.
//!
//! - [`two_hops_and_a_call`]: the pipeline's skeleton. Records go onto a first topic (as the
//!   outbox relay puts them on the intake topic); one member per partition takes each batch and
//!   publishes it to a second topic (as the router publishes jobs), then commits; the second
//!   topic's members (`NOTIFIER_WORKERS`, as the SMS workers) call the SMS provider once per
//!   record, all of a batch's calls at once, then commit. The same consumer loop as the pipeline
//!   (`platform::topic::consume`), the same transport, partitions, batch size and provider client;
//!   no database, no templates, no preferences, no per-user ordering of the calls. The pipeline
//!   cannot carry more than this on the same machine: it does all of it and more.
//! - [`provider_calls`]: the provider calls alone, as many in flight as the SMS workers can have
//!   (`NOTIFIER_WORKERS` × `NOTIFIER_BATCH_SIZE`), no topic at all.
//!
//! Each gets a simulator of its own (the pipeline's counts stay its own), served by this process
//! as the pipeline's is.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, future::join_all, stream};
use notifier::{
    domain::Channel,
    messages::Job,
    pipeline::PipelineSettings,
    providers::{
        DeliveryError,
        phone::{client::ProviderClient, simulator::Simulator},
    },
};
use platform::{
    shutdown::CancellationToken,
    topic::{
        Delivery, Message, Topics,
        consume::{self, Handled},
    },
};
use time::OffsetDateTime;
use tokio::task::JoinSet;

use super::{WARM_UP, WARM_UP_GUARD, job_message, wait_for};

/// The SMS provider of one measurement: a fresh simulator on a port of its own, and its client.
struct Provider {
    simulator: Arc<Simulator>,
    client: ProviderClient,
    server: tokio::task::JoinHandle<()>,
}

impl Provider {
    async fn serve(timeout: Duration) -> anyhow::Result<Self> {
        let simulator = Simulator::new();
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let router = simulator.router();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.ok();
        });
        Ok(Self {
            simulator,
            client: ProviderClient::new(&url, timeout),
            server,
        })
    }

    async fn send(&self, job: &Job) -> Result<(), DeliveryError> {
        let key = format!("{}:{}", job.notification_id, Channel::Sms);
        self.client
            .send_sms(
                &key,
                "+442071838750",
                "Welcome, User 1! Reply STOP to opt out.",
            )
            .await
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Sends `n` job messages keyed by `users` in turn, as the bare loop's, through two topics under
/// `prefix` and a provider call each, as described above; returns the time from the first record
/// published to the last call's arrival at the provider.
pub async fn two_hops_and_a_call(
    topics: &Arc<dyn Topics>,
    prefix: &str,
    settings: &PipelineSettings,
    timeout: Duration,
    users: &[String],
    n: usize,
) -> anyhow::Result<Duration> {
    let (first, second) = (format!("{prefix}.first"), format!("{prefix}.second"));
    for topic in [&first, &second] {
        topics.ensure_topic(topic, settings.partitions).await?;
    }
    let provider = Arc::new(Provider::serve(timeout).await?);
    let stop = CancellationToken::new();
    let mut members = JoinSet::new();
    let mut served = Vec::new();

    for _ in 0..settings.partitions {
        let consumer = topics
            .subscribe(&format!("{prefix}.routers"), &[first.as_str()])
            .await?;
        let (producer, second, flag) =
            (topics.producer(), second.clone(), Served::new(&mut served));
        members.spawn(consume::run(
            notifier::SYSTEM,
            "skeleton.first",
            consumer,
            settings.batch_size,
            stop.clone(),
            move |batch: Vec<Delivery>| {
                let (producer, second, flag) = (producer.clone(), second.clone(), flag.clone());
                async move {
                    let jobs = batch
                        .iter()
                        .map(|record| {
                            Message::new(&second, record.key.clone(), record.payload.clone())
                        })
                        .collect();
                    producer.publish_all(jobs).await?;
                    flag.set();
                    Ok(vec![Handled::Done; batch.len()])
                }
            },
        ));
    }
    for _ in 0..settings.workers_per_channel {
        let consumer = topics
            .subscribe(&format!("{prefix}.workers"), &[second.as_str()])
            .await?;
        let (provider, flag) = (provider.clone(), Served::new(&mut served));
        members.spawn(consume::run(
            notifier::SYSTEM,
            "skeleton.second",
            consumer,
            settings.batch_size,
            stop.clone(),
            move |batch: Vec<Delivery>| {
                let (provider, flag) = (provider.clone(), flag.clone());
                async move {
                    let calls = batch.iter().map(|record| {
                        let provider = &provider;
                        async move {
                            let job: Job = serde_json::from_slice(&record.payload)?;
                            provider.send(&job).await?;
                            anyhow::Ok(())
                        }
                    });
                    for call in join_all(calls).await {
                        call?;
                    }
                    flag.set();
                    Ok(vec![Handled::Done; batch.len()])
                }
            },
        ));
    }

    // Warm up as the pipeline does: until every member has handled a batch (a Kafka group forms
    // in seconds, and a member joining mid-run would stop its group for a rebalance).
    let producer = topics.producer();
    let started = Instant::now();
    let mut sent = 0;
    while !served.iter().all(Served::is_set) {
        if started.elapsed() > WARM_UP_GUARD {
            bail!("some members of the skeleton received nothing during the warm-up");
        }
        // Fresh jobs each round (the provider counts a repeated key once), for the next users
        // (so that the rounds reach every partition, whoever holds it).
        let round: Vec<Message> = (sent..sent + WARM_UP)
            .map(|i| job_message(&first, &users[i % users.len()]))
            .collect();
        sent += round.len();
        producer.publish_all(round).await?;
        wait_for(&provider.simulator, sent, WARM_UP_GUARD).await?;
    }

    let records: Vec<Message> = (0..n)
        .map(|i| job_message(&first, &users[i % users.len()]))
        .collect();
    let count = records.len();
    let started = OffsetDateTime::now_utc();
    producer.publish_all(records).await?;
    let waited = wait_for(&provider.simulator, sent + count, Duration::from_secs(600)).await;
    stop.cancel();
    while members.join_next().await.is_some() {}
    waited.context("the skeleton lost records")?;
    // To the last call's arrival, as the pipeline's throughput is timed, not to the next poll.
    let last = (provider.simulator.messages().into_iter())
        .map(|message| message.received_at)
        .max()
        .unwrap_or(started);
    Ok((last - started).unsigned_abs())
}

/// A call for each of `jobs` to a provider of their own, `in_flight` at a time; returns how long
/// they took.
pub async fn provider_calls(
    timeout: Duration,
    jobs: Vec<Job>,
    in_flight: usize,
) -> anyhow::Result<Duration> {
    let provider = Provider::serve(timeout).await?;
    let started = Instant::now();
    let mut calls = stream::iter(&jobs)
        .map(|job| provider.send(job))
        .buffer_unordered(in_flight.max(1));
    while let Some(call) = calls.next().await {
        call?;
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(
        provider.simulator.counts().delivered == jobs.len() as u64,
        "the provider has {} of {} messages",
        provider.simulator.counts().delivered,
        jobs.len()
    );
    Ok(elapsed)
}

/// Whether one member has handled a batch yet.
#[derive(Clone)]
struct Served(Arc<AtomicBool>);

impl Served {
    fn new(all: &mut Vec<Served>) -> Self {
        let served = Self(Arc::new(AtomicBool::new(false)));
        all.push(served.clone());
        served
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
