//! The pipeline benchmark of issue 5: N notifications pushed through the whole pipeline, from
//! intake to the SMS provider, beside a bare produce-consume loop on the same transport, in the
//! same run. The target: the pipeline carries at least half of what the bare loop does, with no
//! notification lost and none delivered twice at the provider.
//!
//! ```text
//! cargo run --release -p notifier --example pipeline_bench                # SQLite, embedded topics
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres KAFKA_BROKERS=127.0.0.1:9092 \
//!     cargo run --release -p notifier --example pipeline_bench            # PostgreSQL, Kafka
//! ```
//!
//! `loadtests/bench-notifier.sh` runs both, several rounds each, and prints the table that
//! `notifier/DESIGN.md` quotes.
//!
//! What one run does:
//! 1. Builds the notifier from the environment as `main.rs` does (`DATABASE_URL` and
//!    `KAFKA_BROKERS` choose the backends, `NOTIFIER_PARTITIONS` and `NOTIFIER_WORKERS` the
//!    parallelism), with four differences: a fresh database (a PostgreSQL schema or a SQLite file,
//!    dropped afterwards, so every run starts from empty tables), topics under a prefix of their
//!    own (fresh topics on a shared broker; the embedded transport gets a file of its own), a
//!    throttle no benchmark user reaches, and the SMS simulator served here, because that is
//!    where deliveries are counted and timed.
//! 2. The baseline ([`baseline`]): N records of the size of a job message, keyed by the same
//!    users, produced and consumed on a fresh topic with the pipeline's partition count, by a
//!    consumer that commits as the pipeline does (a batch of what has arrived at a time); and,
//!    for comparison with earlier runs, by one that commits each record.
//! 3. The floor ([`skeleton`]): the same N records through two topics and a provider call each,
//!    on the pipeline's consumer loop, transport, partitions and batch size, with no database and
//!    no logic (the most any pipeline of this shape could carry here); then N provider calls
//!    alone. Each is reported as a share of the bare loop.
//! 4. Creates `BENCH_USERS` users with a phone, so the notifications spread over the partitions
//!    as real users' would, and starts the pipeline.
//! 5. Warms up: sends notifications until every consumer of the intake and SMS topics has
//!    received one. A Kafka group takes seconds to form, and a member joining during the run would
//!    stop its whole group for a rebalance, which is start-up cost, not throughput.
//! 6. Accepts N notifications on one channel (SMS, one provider message each),
//!    `BENCH_CONCURRENCY` at a time, and waits until the simulator has them all.
//! 7. Stops the pipeline (so that a late duplicate would have arrived) and reports: throughput
//!    from the first accept to the last delivery, p50 and p99 from intake (the call to `accept`) to
//!    provider (the simulator's receive time), lost (expected minus the keys at the provider) and
//!    duplicated (provider requests beyond the first per key), the baseline's throughput and the
//!    ratio; then where the time went ([`profile`]).
//!
//! Notifications go in through `Notifier::accept`, not over HTTP: the question is what the
//! pipeline costs against the broker it runs on, and an HTTP client sharing the machine would
//! add its own cost to one side only. `loadtests/notifier.js` measures the HTTP API.
//!
//! Without `BENCH_RATE`, all N are accepted as fast as intake takes them, so the pipeline drains
//! a backlog: the throughput is its capacity, and p50/p99 are mostly time spent queued. With
//! `BENCH_RATE` below that capacity, they are the latency of an unloaded pipeline at that rate.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_N` | `10000` | notifications measured (and records in each baseline) |
//! | `BENCH_CONCURRENCY` | `64` | accepts in flight at once: enough that intake is ahead of the pipeline, so that the pipeline is what is measured (`DESIGN.md` §10) |
//! | `BENCH_RATE` | `0` | accepts per second; 0: as fast as they are taken |
//! | `BENCH_USERS` | `1000` | users the notifications are spread over |
//! | `BENCH_GUARD_SECS` | `600` | how long to wait for the deliveries before counting the rest as lost |
//! | `BENCH_COUNT_STATEMENTS` | unset | `1`: count SQL statements per notification (costs a little throughput) |
//!
//! The last line printed is `result key=value …`, for the script.

mod baseline;
mod profile;
mod skeleton;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::bail;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use notifier::{
    Application, Settings,
    domain::{Channel, NotificationRequest, Priority, UserDetails, UserId},
    messages::{Job, Topology},
    providers::phone::simulator::{DEFAULT_CAPACITY, Simulator},
    service::Notifier,
};
use platform::{
    clock::SystemClock,
    config::{TopicsConfig, env_opt, env_or, env_positive},
    testing::{TestBackends, TestTopics},
    topic::{Message, Topics},
};
use serde_json::json;
use time::OffsetDateTime;
use tracing_subscriber::{EnvFilter, filter::Targets, fmt, prelude::*};
use uuid::Uuid;

use self::{
    baseline::Commit,
    profile::{StatementCounts, Statements, TimedTopics},
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Notifications per warm-up round.
const WARM_UP: usize = 20;
/// How long the warm-up may take: a Kafka group forms in seconds.
const WARM_UP_GUARD: Duration = Duration::from_secs(120);
/// How often the simulator's count is read while waiting.
const POLL: Duration = Duration::from_millis(10);

struct Options {
    n: usize,
    concurrency: usize,
    rate: u64,
    users: usize,
    guard: Duration,
    count_statements: bool,
}

impl Options {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            n: env_positive("BENCH_N", 10_000)? as usize,
            concurrency: env_positive("BENCH_CONCURRENCY", 64)? as usize,
            rate: env_or("BENCH_RATE", 0)?,
            users: env_positive("BENCH_USERS", 1_000)? as usize,
            guard: Duration::from_secs(env_positive("BENCH_GUARD_SECS", 600)?),
            count_statements: env_opt::<String>("BENCH_COUNT_STATEMENTS")?.as_deref() == Some("1"),
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::from_env()?;
    let statements = install_tracing(options.count_statements);
    let bench = Bench::build(&options).await?;
    println!("{}", bench.describe(&options));

    let batch_size = bench.settings.pipeline.batch_size;
    let bare_each_record = bench.bare_loop(options.n, Commit::EachRecord).await?;
    let bare = bench
        .bare_loop(options.n, Commit::EachBatch(batch_size))
        .await?;
    for (commits, elapsed) in [
        ("each record".to_owned(), bare_each_record),
        (format!("each batch of up to {batch_size}"), bare),
    ] {
        println!(
            "bare produce-consume loop, a commit for {commits}: {} records in {:.2} s, {:.0}/s",
            options.n,
            elapsed.as_secs_f64(),
            options.n as f64 / elapsed.as_secs_f64()
        );
    }

    let floor = bench.floor(options.n).await?;
    for (what, elapsed) in [
        (
            "two hops and a provider call a record, nothing else (the skeleton)",
            floor.skeleton,
        ),
        (
            &*format!("provider calls alone, {} in flight", floor.in_flight),
            floor.provider,
        ),
    ] {
        println!(
            "{what}: {} in {:.2} s, {:.0}/s, {:.1} % of the bare loop",
            options.n,
            elapsed.as_secs_f64(),
            options.n as f64 / elapsed.as_secs_f64(),
            bare.as_secs_f64() / elapsed.as_secs_f64() * 100.0
        );
    }

    bench.create_users().await?;
    let pipeline = bench.app.start_pipeline().await?;
    let warmed = bench.warm_up().await?;
    // Every message of the run is timed from the simulator's list, which keeps the newest only.
    anyhow::ensure!(
        warmed + options.n <= DEFAULT_CAPACITY,
        "BENCH_N={} and {warmed} warm-up messages are more than the {DEFAULT_CAPACITY} the \
         simulator keeps",
        options.n
    );
    bench.timed.reset();
    let statements_before = statements.snapshot();
    let accepting = Instant::now();
    let intake = accept_all(
        &bench.notifier,
        &bench.users,
        warmed,
        options.n,
        options.concurrency,
        options.rate,
    )
    .await?;
    let accepted_in = accepting.elapsed();
    let all_delivered = wait_for(&bench.simulator, warmed + options.n, options.guard).await;
    let statements_after = statements.snapshot();
    // Stopped before counting, so that a late duplicate would be counted.
    pipeline.stop().await;

    let measured = Measured::count(&bench.simulator, &intake);
    let ratio = measured.throughput / (options.n as f64 / bare.as_secs_f64());
    println!(
        "pipeline: {} delivered in {:.2} s, {:.0}/s (accepted in {:.2} s); intake to provider \
         p50 {:.1} ms, p99 {:.1} ms; lost {}, duplicated {}",
        measured.delivered,
        measured.elapsed.as_secs_f64(),
        measured.throughput,
        accepted_in.as_secs_f64(),
        measured.p50_ms,
        measured.p99_ms,
        measured.lost,
        measured.duplicated,
    );
    println!("ratio pipeline / bare loop: {ratio:.5}");
    print_profile(&bench.timed, &bench.topology, options.n);
    if options.count_statements {
        print_statements(&statements_before, &statements_after, options.n);
    }
    println!(
        "result backend={} n={} rate={} pipeline_per_s={:.0} p50_ms={:.1} p99_ms={:.1} lost={} \
         duplicated={} bare_per_s={:.0} bare_each_record_per_s={:.0} ratio={ratio:.5} \
         skeleton_per_s={:.0} provider_per_s={:.0}",
        bench.backend,
        options.n,
        options.rate,
        measured.throughput,
        measured.p50_ms,
        measured.p99_ms,
        measured.lost,
        measured.duplicated,
        options.n as f64 / bare.as_secs_f64(),
        options.n as f64 / bare_each_record.as_secs_f64(),
        options.n as f64 / floor.skeleton.as_secs_f64(),
        options.n as f64 / floor.provider.as_secs_f64(),
    );
    all_delivered?;
    if measured.duplicated > 0 {
        bail!(
            "{} provider requests repeated a key already delivered",
            measured.duplicated
        );
    }
    Ok(())
}

/// Logs at `warn` (or `RUST_LOG`); with `count_statements`, sqlx's statement events go to the
/// returned counter as well.
fn install_tracing(count_statements: bool) -> Statements {
    let statements = Statements::default();
    let logs = fmt::layer().with_filter(
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,sqlx=error")),
    );
    let counting = count_statements.then(|| {
        statements
            .clone()
            .with_filter(Targets::new().with_target("sqlx::query", tracing::Level::DEBUG))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(counting)
        .init();
    statements
}

/// The notifier under measurement, and what the benchmark reads from it.
struct Bench {
    app: Application,
    notifier: Arc<Notifier>,
    simulator: Arc<Simulator>,
    timed: Arc<TimedTopics>,
    /// The transport itself, for the bare loop.
    transport: Arc<dyn Topics>,
    /// `Some` on Kafka, for the bare loop's own clients.
    brokers: Option<String>,
    settings: Settings,
    topology: Topology,
    users: Vec<String>,
    /// `postgres+kafka`, `sqlite+memory`.
    backend: String,
    /// Held so that the fresh database and the embedded transport's file live until the end
    /// (and are removed then).
    _database: TestBackends,
    _topics: TestTopics,
}

impl Bench {
    async fn build(options: &Options) -> anyhow::Result<Self> {
        let run = Uuid::new_v4().simple().to_string()[..8].to_owned();
        let mut settings = Settings::from_env()?;
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.addr = any_port;
        settings.provider_url = None;
        settings.smtp_url = None;
        settings.provider_addr = any_port;
        settings.smtp_sink_addr = any_port;
        settings.mailbox_addr = any_port;
        settings.pipeline.topic_prefix = format!("bench.{run}");
        settings.pipeline.throttle.limit = u32::MAX;
        settings.pipeline.payments_topic = None;

        let backends = TestBackends::from_env().await;
        // Kafka when KAFKA_BROKERS is set, otherwise a durable embedded transport in a temporary
        // directory (not ./data).
        let topics = TestTopics::from_env().await;
        let brokers = match &topics.config {
            TopicsConfig::Kafka { brokers } => Some(brokers.clone()),
            TopicsConfig::Embedded { .. } => None,
        };
        let transport = topics.topics.clone();
        let timed = Arc::new(TimedTopics::new(transport.clone()));
        let app = Application::build_with(
            settings.clone(),
            backends.database.clone(),
            timed.clone(),
            Arc::new(SystemClock),
        )
        .await?;
        let simulator = app
            .local_providers()
            .simulator
            .as_ref()
            .expect("the simulator runs here: no provider URL is set")
            .provider
            .clone();
        Ok(Self {
            notifier: app.notifier().clone(),
            app,
            simulator,
            timed,
            backend: format!("{}+{}", backends.database.engine(), transport.backend()),
            transport,
            brokers,
            topology: Topology::new(&settings.pipeline.topic_prefix),
            users: (0..options.users)
                .map(|i| format!("bench-{run}-{i}"))
                .collect(),
            settings,
            _database: backends,
            _topics: topics,
        })
    }

    fn describe(&self, options: &Options) -> String {
        let pipeline = &self.settings.pipeline;
        format!(
            "{}: {} notifications, {} users, {} partitions, {} workers per channel, {} accepts \
             in flight{}",
            self.backend,
            options.n,
            options.users,
            pipeline.partitions,
            pipeline.workers_per_channel,
            options.concurrency,
            match options.rate {
                0 => String::new(),
                rate => format!(", {rate} accepts/s"),
            }
        )
    }

    /// The baseline: `n` job-sized records keyed by the benchmark's users, through a fresh topic
    /// with the pipeline's partition count, committed as `commit` says.
    async fn bare_loop(&self, n: usize, commit: Commit) -> anyhow::Result<Duration> {
        let topic = format!(
            "{}.bare.{}",
            self.settings.pipeline.topic_prefix,
            match commit {
                Commit::EachRecord => "each-record",
                Commit::EachBatch(_) => "each-batch",
            }
        );
        self.transport
            .ensure_topic(&topic, self.settings.pipeline.partitions)
            .await?;
        let records = (0..n)
            .map(|i| job_message(&topic, &self.users[i % self.users.len()]))
            .collect();
        baseline::run(
            self.brokers.as_deref(),
            &*self.transport,
            &topic,
            records,
            commit,
        )
        .await
    }

    /// The floor under the pipeline's cost ([`skeleton`]): `n` job records through its two hops
    /// and a provider call each, then `n` provider calls alone.
    async fn floor(&self, n: usize) -> anyhow::Result<Floor> {
        let pipeline = &self.settings.pipeline;
        let skeleton = skeleton::two_hops_and_a_call(
            &self.transport,
            &format!("{}.skeleton", pipeline.topic_prefix),
            pipeline,
            self.settings.provider_timeout,
            &self.users,
            n,
        )
        .await?;
        let in_flight = pipeline.workers_per_channel * pipeline.batch_size;
        let jobs = (0..n)
            .map(|_| Job::first(Uuid::now_v7(), Channel::Sms, 0))
            .collect();
        let provider =
            skeleton::provider_calls(self.settings.provider_timeout, jobs, in_flight).await?;
        Ok(Floor {
            skeleton,
            provider,
            in_flight,
        })
    }

    async fn create_users(&self) -> anyhow::Result<()> {
        for user in &self.users {
            let body = UserDetails {
                phone: Some("+442071838750".to_owned()),
                ..UserDetails::default()
            };
            let id = UserId::parse(user).expect("a valid user id");
            self.notifier.put_user(id, body).await?;
        }
        Ok(())
    }

    /// Sends rounds of notifications until every consumer of the intake and SMS topics has
    /// received one, each round delivered before the next; returns how many were sent.
    async fn warm_up(&self) -> anyhow::Result<usize> {
        let watched = [self.topology.intake(), self.topology.channel(Channel::Sms)];
        let started = Instant::now();
        let mut sent = 0;
        loop {
            accept_all(&self.notifier, &self.users, sent, WARM_UP, 4, 0).await?;
            sent += WARM_UP;
            wait_for(&self.simulator, sent, WARM_UP_GUARD).await?;
            let formed = watched.iter().all(|topic| {
                let times = self.timed.times(topic);
                times.consumers_served == times.consumers
            });
            if formed {
                println!(
                    "warm-up: {sent} notifications, {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(sent);
            }
            if started.elapsed() > WARM_UP_GUARD {
                bail!("some consumers of {watched:?} received nothing during the warm-up");
            }
        }
    }
}

/// How long the floor's two measurements took ([`Bench::floor`]).
struct Floor {
    skeleton: Duration,
    provider: Duration,
    in_flight: usize,
}

/// What the provider got of the measured notifications.
struct Measured {
    delivered: usize,
    /// Notifications with no message at the provider.
    lost: usize,
    /// Provider requests beyond the first for a key.
    duplicated: u64,
    /// From the first call to `accept` to the last message at the provider.
    elapsed: Duration,
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Measured {
    /// Reads the simulator's messages for the notifications in `intake` (each with the moment
    /// `accept` was called for it).
    fn count(simulator: &Simulator, intake: &[(Uuid, OffsetDateTime)]) -> Self {
        let accepted_at: HashMap<String, OffsetDateTime> =
            intake.iter().map(|&(id, at)| (sms_key(id), at)).collect();
        let mut latencies = Vec::with_capacity(intake.len());
        let mut duplicated = 0;
        let mut last_delivery = None;
        for message in simulator.messages() {
            let Some(&accepted_at) = accepted_at.get(&message.idempotency_key) else {
                continue;
            };
            latencies.push(message.received_at - accepted_at);
            duplicated += message.repeats;
            last_delivery = last_delivery.max(Some(message.received_at));
        }
        latencies.sort();
        let first_accept = intake.iter().map(|&(_, at)| at).min();
        let elapsed = match (first_accept, last_delivery) {
            (Some(first), Some(last)) => (last - first).unsigned_abs(),
            _ => Duration::ZERO,
        };
        let ms = |p| percentile(&latencies, p).as_seconds_f64() * 1000.0;
        Self {
            delivered: latencies.len(),
            lost: intake.len() - latencies.len(),
            duplicated,
            elapsed,
            throughput: latencies.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
            p50_ms: ms(50),
            p99_ms: ms(99),
        }
    }
}

/// The SMS provider's idempotency key for a notification (`providers/mod.rs`).
fn sms_key(id: Uuid) -> String {
    format!("{id}:{}", Channel::Sms)
}

/// A record like the router's jobs: the same key and a payload of the same size.
fn job_message(topic: &str, user: &str) -> Message {
    let job = Job::first(Uuid::now_v7(), Channel::Sms, 0);
    Message::new(
        topic,
        user,
        serde_json::to_vec(&job).expect("a job serialises"),
    )
}

/// Accepts notifications `first..first + count`, `concurrency` at a time, at `rate` a second
/// (0: as fast as they are taken); returns each one's id and the moment `accept` was called.
async fn accept_all(
    notifier: &Arc<Notifier>,
    users: &[String],
    first: usize,
    count: usize,
    concurrency: usize,
    rate: u64,
) -> anyhow::Result<Vec<(Uuid, OffsetDateTime)>> {
    let start = tokio::time::Instant::now();
    stream::iter(first..first + count)
        .map(|i| async move {
            if rate > 0 {
                let due = Duration::from_secs_f64((i - first) as f64 / rate as f64);
                tokio::time::sleep_until(start + due).await;
            }
            let body = NotificationRequest {
                user_id: users[i % users.len()].clone(),
                template: "welcome".to_owned(),
                data: json!({ "name": format!("User {i}") })
                    .as_object()
                    .expect("an object")
                    .clone(),
                channels: Some(vec![Channel::Sms.to_string()]),
                priority: Priority::Normal,
                idempotency_key: None,
            };
            let accepted_at = OffsetDateTime::now_utc();
            let accepted = notifier.accept(body).await?;
            anyhow::Ok((accepted.id, accepted_at))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// Waits until the simulator has delivered `count` messages, or fails after `guard`.
async fn wait_for(simulator: &Simulator, count: usize, guard: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while simulator.counts().delivered < count as u64 {
        if started.elapsed() > guard {
            bail!(
                "after {guard:?} the provider has {} of {count} messages",
                simulator.counts().delivered
            );
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// The nearest-rank percentile of sorted durations.
fn percentile(sorted: &[time::Duration], p: usize) -> time::Duration {
    if sorted.is_empty() {
        return time::Duration::ZERO;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// SQL statements per notification, by their first words, and the time they took.
fn print_statements(before: &StatementCounts, after: &StatementCounts, n: usize) {
    let mut counts: Vec<(u64, &str)> = after
        .by_summary
        .iter()
        .map(|(summary, &count)| {
            let earlier = before.by_summary.get(summary).copied().unwrap_or(0);
            (count - earlier, summary.as_str())
        })
        .filter(|&(count, _)| count > 0)
        .collect();
    counts.sort_by(|a, b| b.cmp(a));
    let total: u64 = counts.iter().map(|&(count, _)| count).sum();
    println!(
        "SQL statements: {:.2} per notification, {:.2} ms of statement time per notification",
        total as f64 / n as f64,
        (after.time - before.time).as_secs_f64() * 1000.0 / n as f64
    );
    for (count, summary) in counts {
        println!("  {:6.2}  {summary}", count as f64 / n as f64);
    }
}

/// Per stage: what one batch costs each consumer, and what that allows.
fn print_profile(timed: &TimedTopics, topology: &Topology, n: usize) {
    println!("where the time goes (measured at the topics):");
    for (stage, topic) in [
        ("router (intake topic)", topology.intake()),
        ("SMS workers (sms topic)", topology.channel(Channel::Sms)),
    ] {
        let times = timed.times(&topic);
        println!(
            "  {stage}: {} consumers, {} records in {} batches ({:.1} a batch); {:.2} ms on the \
             topic; per batch, handling {:.2} ms and commit {:.2} ms; at most {:.0} records/s \
             per consumer",
            times.consumers,
            times.batch_records,
            times.commits,
            times.mean_batch(),
            times.mean_on_topic().as_secs_f64() * 1000.0,
            times.mean_handling().as_secs_f64() * 1000.0,
            times.mean_commit().as_secs_f64() * 1000.0,
            times.per_consumer_ceiling(),
        );
        println!(
            "    published to it: {} messages in {} calls, {:.2} ms per call waiting for the \
             broker ({:.2} calls per notification)",
            times.published,
            times.publish_calls,
            times.mean_publish_call().as_secs_f64() * 1000.0,
            times.publish_calls as f64 / n as f64,
        );
    }
}
