//! Fan-out on write: the post events, and the workers that carry each post into its readers'
//! timelines.
//!
//! ```text
//!  POST /v1/posts ── one transaction: the post, an outbox row ──▶ outbox
//!                                                                   │ relay (platform::outbox)
//!                                                                   ▼
//!                                          feed.posts (key: author id) ──▶ fan-out workers
//!                                                                            │ followers, 1,000 at a time
//!                                                                            ▼
//!                                                 ZADD + trim per follower, one pipeline per batch
//! ```
//!
//! - **The outbox**, not a publish from the request: a post whose event was lost after its
//!   commit would never reach a timeline, and nothing would notice. The event is written in the
//!   post's own transaction, so "posted" and "to be fanned out" are one fact
//!   (`src/store/*.rs`, `insert_post` and `delete_post`).
//! - **Keyed by author**, so one author's events stay in order: a delete never overtakes the
//!   post it deletes.
//! - **Commit after handling, retry without skipping** (the platform's consumer loop,
//!   `platform/src/topic/consume.rs`, which the notifier's stages run too). A worker takes the
//!   events that have arrived, up to [`EVENTS_PER_BATCH`], handles them in order, and commits them
//!   only after every timeline write is made; a failure is retried on the same events with a
//!   growing pause. A crash replays them: at-least-once. That is safe because every write it makes is
//!   idempotent (`ZADD` of a member already there, `ZREM` of one already gone), so no
//!   deduplication table is needed; the events' ids are not even read.
//! - **Batches of followers**, keyset-paginated from the `follows_by_followee` index, each
//!   written as one Redis pipeline: a post by an author with 10,000 followers is 10 queries and
//!   10 round trips, not 10,000.
//! - **Who is skipped.** Inactive readers (no feed read within `FEED_ACTIVE_WINDOW`): their
//!   timeline is rebuilt on their next read instead (`src/timeline/cached.rs`). In hybrid,
//!   celebrities (more than `FEED_CELEBRITY_THRESHOLD` followers): their posts are merged in at
//!   read time, so a post by an author with 100,000 followers costs no timeline writes at all.
//! - **A celebrity no longer.** When an unfollow takes an author back down to the threshold, the
//!   posts they made as a celebrity are in no timeline and no longer merged in: its
//!   `author.demoted` event makes the workers drop the timelines of the author and their active
//!   followers, which their next reads rebuild from the database.
//! - **Paused by its switch.** The `fanout-worker` fault switch (`platform::fault`) is passed
//!   before each event: its latency slows every event down, and switched unreachable, which for
//!   a worker means paused, the worker stops where it is. It holds the events it has taken,
//!   uncommitted, and handles nothing until the switch is undone, then goes on from the event it
//!   stopped at, so every post reaches every timeline, once. It waits rather than failing: a
//!   failure would be retried with a growing pause (up to five seconds after the undo before
//!   the next try), and logged and counted as an error each time, when nothing is wrong with the
//!   events. While paused a worker does not poll its consumer: on Kafka a rebalance meanwhile
//!   (another instance joining or leaving) waits for it up to `max.poll.interval.ms`, then
//!   expels it, and what it held goes uncommitted to a member that is not paused, as it would
//!   from a worker that hung.
//!
//! Metrics: `feed_fanout_lag_seconds` (post created to its last insert), `feed_fanout_inserts_total`,
//! `feed_fanout_events_total{event, outcome}`, and `feed_fanout_pending`, the events this instance
//! announced that its workers have not handled yet ([`FanoutStats::pending`]). The same counts
//! are in [`FanoutStats`], for tests.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use platform::{
    clock::Clock,
    db::Database,
    fault::FaultSwitch,
    outbox::{OutboxEvent, Relay},
    shutdown::CancellationToken,
    topic::{
        Consumer, Delivery, Topics,
        consume::{self, Handled},
    },
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::{sync::Notify, task::JoinSet};
use uuid::Uuid;

use crate::{
    domain::{PostId, UserId},
    store::FeedStore,
    timeline::{Strategy, TimelineSettings, cache::TimelineCache, celebrities::Celebrities},
};

/// Post events a worker takes at once: handled one after another, committed together.
pub const EVENTS_PER_BATCH: usize = 32;

/// How often a worker paused by its switch looks at the switch again.
const PAUSED_POLL: Duration = Duration::from_millis(50);

/// The message on the posts topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PostEvent {
    Created {
        post: u64,
        author: u64,
        created_at_ms: i64,
    },
    Deleted {
        post: u64,
        author: u64,
    },
    /// Under hybrid, an unfollow took `author` back down to the celebrity threshold. Their posts
    /// made as a celebrity were never fanned out, and reads no longer merge them in: the workers
    /// drop their followers' timelines, which the next read rebuilds from the database.
    Demoted {
        author: u64,
    },
}

impl PostEvent {
    pub fn created(post: PostId, author: UserId, created_at: OffsetDateTime) -> Self {
        Self::Created {
            post: post.get(),
            author: author.get(),
            created_at_ms: platform::db::unix_millis(created_at),
        }
    }

    pub fn deleted(post: PostId, author: UserId) -> Self {
        Self::Deleted {
            post: post.get(),
            author: author.get(),
        }
    }

    pub fn demoted(author: UserId) -> Self {
        Self::Demoted {
            author: author.get(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "post.created",
            Self::Deleted { .. } => "post.deleted",
            Self::Demoted { .. } => "author.demoted",
        }
    }

    fn author(&self) -> u64 {
        match self {
            Self::Created { author, .. }
            | Self::Deleted { author, .. }
            | Self::Demoted { author } => *author,
        }
    }

    /// The outbox row that announces this event on `topic`, keyed by its author.
    pub fn outbox(&self, topic: &str, now: OffsetDateTime) -> OutboxEvent {
        OutboxEvent {
            event_id: Uuid::now_v7(),
            topic: topic.to_owned(),
            key: self.author().to_string(),
            event_type: self.name().to_owned(),
            payload: serde_json::to_vec(self).expect("a post event serialises"),
            created_at: now,
        }
    }
}

/// Where post events go, who to wake once one is committed, and where it is counted as waiting.
#[derive(Clone)]
pub struct PostEvents {
    pub topic: String,
    pub wake: Arc<Notify>,
    pub stats: Arc<FanoutStats>,
}

/// Counts of what the workers did since start-up: the metrics' numbers, readable in process.
#[derive(Debug, Default)]
pub struct FanoutStats {
    /// Events handled (every timeline write made; the commit follows), duplicates and skipped
    /// ones included.
    pub events: AtomicU64,
    /// Timeline inserts made.
    pub inserts: AtomicU64,
    /// Workers paused by the `fanout-worker` switch, each holding the events it has taken.
    paused: AtomicU64,
    /// Events announced and not yet handled; under a lock so that the gauge is set in the order
    /// the count changes.
    pending: Mutex<u64>,
}

impl FanoutStats {
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::SeqCst)
    }

    pub fn inserts(&self) -> u64 {
        self.inserts.load(Ordering::SeqCst)
    }

    /// Workers paused by the switch, holding the events they have taken.
    pub fn paused(&self) -> u64 {
        self.paused.load(Ordering::SeqCst)
    }

    /// The fan-out work waiting: post events this instance announced (their outbox rows
    /// committed) that its workers have not handled yet, whether in the outbox, on the topic, or
    /// held by a paused worker. The gauge `feed_fanout_pending`.
    ///
    /// Exact with one instance, which is how the lab and the tests run. With several, an event
    /// is counted by the instance that announced it and handled by whichever holds its partition,
    /// so each instance's count is off and only the consumer group's lag on the posts topic is
    /// right (which `platform::topic` does not expose). It never goes below zero: events
    /// announced before a restart, or delivered twice, are handled without having been counted.
    pub fn pending(&self) -> u64 {
        *self
            .pending
            .lock()
            .expect("the pending count is never poisoned")
    }

    /// One event's outbox row committed.
    pub fn announced(&self) {
        self.change_pending(|pending| pending + 1);
    }

    /// `events` handled.
    fn handled(&self, events: usize) {
        self.change_pending(|pending| pending.saturating_sub(events as u64));
    }

    fn change_pending(&self, change: impl FnOnce(u64) -> u64) {
        let mut pending = self
            .pending
            .lock()
            .expect("the pending count is never poisoned");
        *pending = change(*pending);
        metrics::gauge!("feed_fanout_pending").set(*pending as f64);
    }
}

/// Counts a worker as paused while it lives.
struct Paused<'a>(&'a FanoutStats);

impl<'a> Paused<'a> {
    fn new(stats: &'a FanoutStats) -> Self {
        stats.paused.fetch_add(1, Ordering::SeqCst);
        Self(stats)
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.0.paused.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a worker needs.
pub struct Context {
    pub strategy: Strategy,
    pub store: Arc<dyn FeedStore>,
    pub timelines: Arc<dyn TimelineCache>,
    /// Under hybrid, the celebrities' recent posts, which their events go to instead.
    pub celebrities: Option<Arc<Celebrities>>,
    pub clock: Arc<dyn Clock>,
    pub settings: TimelineSettings,
    /// Followers read and written per batch.
    pub batch: u32,
    pub stats: Arc<FanoutStats>,
    /// The `fanout-worker` fault switch: latency before each event, and a pause while it is
    /// switched unreachable.
    pub switch: FaultSwitch,
}

/// How many workers, on what topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutSettings {
    /// The posts topic (`FEED_POSTS_TOPIC`, `feed.posts`); the consumer group is `<topic>.fanout`.
    pub topic: String,
    pub partitions: u32,
    /// Members of the consumer group in this process (`FEED_FANOUT_WORKERS`).
    pub workers: usize,
    /// Followers read and written per batch: 1,000, one query and one Redis pipeline each.
    pub batch: u32,
    /// How often the outbox relay looks for rows besides being woken.
    pub relay_interval: Duration,
}

/// The running fan-out: the outbox relay and the workers, as tasks.
pub struct Fanout {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Fanout {
    /// Starts the relay and joins the consumer group with `settings.workers` members.
    pub async fn start(
        context: Arc<Context>,
        settings: &FanoutSettings,
        topics: &dyn Topics,
        database: Database,
        wake: Arc<Notify>,
    ) -> anyhow::Result<Self> {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let relay = Relay::new(
            crate::SYSTEM,
            database,
            topics.producer(),
            context.clock.clone(),
            wake,
        );
        tasks.spawn(relay.run(settings.relay_interval, stop.clone()));
        // Sets the gauge to what is pending now, so that its series starts with the workers.
        context.stats.handled(0);
        let group = format!("{}.fanout", settings.topic);
        for _ in 0..settings.workers.max(1) {
            let consumer = topics
                .subscribe(&group, &[&settings.topic])
                .await
                .with_context(|| format!("joining {group}"))?;
            tasks.spawn(run(context.clone(), consumer, stop.clone()));
        }
        Ok(Self { stop, tasks })
    }

    /// Stops every worker between events, and waits for them.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One worker: receive a batch of events, handle them in order (retrying until that succeeds),
/// commit them.
async fn run(context: Arc<Context>, consumer: Box<dyn Consumer>, stop: CancellationToken) {
    let stopped = stop.clone();
    consume::run(
        crate::SYSTEM,
        "feed.fanout",
        consumer,
        EVENTS_PER_BATCH,
        stop,
        |batch| {
            let (context, stopped) = (context.clone(), stopped.clone());
            async move {
                for delivery in &batch {
                    take(&context, &stopped).await?;
                    handle(&context, delivery).await?;
                }
                // Pending first, so that whoever sees the events handled sees them no longer pending.
                context.stats.handled(batch.len());
                context
                    .stats
                    .events
                    .fetch_add(batch.len() as u64, Ordering::SeqCst);
                Ok(vec![Handled::Done; batch.len()])
            }
        },
    )
    .await;
}

/// Passes the `fanout-worker` switch before an event: waits its latency, and while it is switched
/// unreachable, waits for the undo, holding the batch. Fails only if the worker is stopped
/// meanwhile: the batch is then left uncommitted, and the consumer loop, seeing the stop, ends
/// (logging the failure once) without retrying it.
async fn take(context: &Context, stop: &CancellationToken) -> anyhow::Result<()> {
    let mut paused = None;
    loop {
        let passed = tokio::select! {
            _ = stop.cancelled() => None,
            passed = context.switch.pass() => Some(passed.is_ok()),
        };
        match passed {
            Some(true) => return Ok(()),
            Some(false) => {
                paused.get_or_insert_with(|| Paused::new(&context.stats));
            }
            None => break,
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(PAUSED_POLL) => {}
        }
    }
    anyhow::bail!(
        "stopped while held by the fanout-worker fault switch: the events taken stay uncommitted"
    )
}

/// Applies one event to every timeline it touches: a post to its author's and their active
/// followers' (none under hybrid if the author is a celebrity), a demotion by dropping those.
async fn handle(context: &Context, delivery: &Delivery) -> anyhow::Result<()> {
    let event: PostEvent = match serde_json::from_slice(&delivery.payload) {
        Ok(event) => event,
        Err(err) => {
            // Retrying cannot fix it, and holding the partition would stop every author in it.
            tracing::error!(offset = delivery.offset, error = %err, "a post event that does not parse: skipped");
            metrics::counter!("feed_fanout_events_total", "event" => "unknown", "outcome" => "poison").increment(1);
            return Ok(());
        }
    };
    let author = UserId::new(event.author()).context("author id out of range")?;
    let post = |id: u64| PostId::new(id).context("post id out of range");
    let write = match event {
        PostEvent::Created { post: id, .. } => Write::Insert(post(id)?),
        PostEvent::Deleted { post: id, .. } => Write::Remove(post(id)?),
        PostEvent::Demoted { .. } => Write::Forget,
    };
    if let Write::Insert(post) | Write::Remove(post) = write {
        let followers = context.store.follower_count(author).await?;
        if !context.settings.fans_out_to(context.strategy, followers) {
            // One write, to the author's own recent posts, whatever the followers; the post
            // request made it already unless it failed, and doing it twice changes nothing.
            if let Some(celebrities) = &context.celebrities {
                match write {
                    Write::Insert(_) => celebrities.posted(author, post).await?,
                    _ => celebrities.deleted(author, post).await?,
                }
            }
            metrics::counter!("feed_fanout_events_total", "event" => event.name(), "outcome" => "celebrity").increment(1);
            return Ok(());
        }
    }
    let active_since = context.settings.active_since(context.clock.now());
    // The author's own timeline first: they follow no one to see their own posts.
    let mut batch = vec![author];
    let mut after = None;
    loop {
        let readers = context
            .store
            .active_followers(author, active_since, after, context.batch)
            .await?;
        let last_batch = readers.len() < context.batch as usize;
        after = readers.last().copied();
        batch.extend(readers);
        match write {
            Write::Insert(post) => {
                context.timelines.insert(&batch, post).await?;
                metrics::counter!("feed_fanout_inserts_total").increment(batch.len() as u64);
                context
                    .stats
                    .inserts
                    .fetch_add(batch.len() as u64, Ordering::SeqCst);
            }
            Write::Remove(post) => context.timelines.remove(&batch, post).await?,
            Write::Forget => context.timelines.forget(&batch).await?,
        }
        if last_batch {
            break;
        }
        batch.clear();
    }
    if let PostEvent::Created { created_at_ms, .. } = event {
        let lag = context.clock.now() - platform::db::from_unix_millis(created_at_ms);
        metrics::histogram!("feed_fanout_lag_seconds").record(lag.as_seconds_f64().max(0.0));
    }
    let outcome = match write {
        Write::Forget => "dropped",
        _ => "fanned_out",
    };
    metrics::counter!("feed_fanout_events_total", "event" => event.name(), "outcome" => outcome)
        .increment(1);
    Ok(())
}

/// What an event does to the timelines of its author and their active followers.
#[derive(Debug, Clone, Copy)]
enum Write {
    Insert(PostId),
    Remove(PostId),
    /// Drop them, for their readers' next reads to rebuild from the database.
    Forget,
}
