//! Building and running the service: connect the database, the caches and the topics, migrate,
//! assemble, serve.
//!
//! This is the one place where the backends and the strategy are chosen:
//! `platform::db::Database::connect` picks PostgreSQL or SQLite from `DATABASE_URL`,
//! [`store::for_database`] the matching store, [`cache::connect`] and `platform::cache::connect`
//! Redis or in-process caches from `REDIS_URL`, `platform::topic::connect` Kafka or the embedded
//! topics from `KAFKA_BROKERS` (for push and hybrid), and [`timeline::for_strategy`] how home
//! feeds are built from `FEED_STRATEGY`.
//!
//! It is also where each dependency is put behind its fault switch (`platform::fault`, served at
//! `/admin/faults`): the store behind `database`, the timelines and the post cache behind
//! `redis`, and the fan-out workers behind `fanout-worker`. Pull uses neither a cache nor a
//! worker, so under pull only `database` is served: the others would change nothing.

use std::{future::Future, net::SocketAddr, num::NonZeroUsize, sync::Arc, time::Duration};

use anyhow::Context;
use axum::Router;
use platform::{
    cache::{CacheConfig, FaultyCache},
    clock::{Clock, SystemClock},
    db::Database,
    fault::{FaultSwitch, FaultSwitches},
    health::{Need, Readiness},
    topic::{self, MemoryTopics, Topics},
};
use tokio::{net::TcpListener, sync::Notify};

use crate::{
    SYSTEM,
    fanout::{self, Fanout, FanoutStats, PostEvents},
    http::{self, AppState},
    ids::Snowflake,
    service::Feed,
    settings::Settings,
    store::{self, FaultyStore},
    timeline::{
        self, Caches, Strategy,
        cache::{self, FaultyTimelines, TimelineCache, TimelinesConfig},
        celebrities::Celebrities,
        hydrate::PostCache,
    },
};

/// The PostgreSQL schema the feed's tables live in.
pub const SCHEMA: &str = "feed_service";

/// How long a Redis command may take before it fails.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Entries of the in-process caches (Redis is bounded by its `maxmemory`).
const IN_PROCESS_ENTRIES: usize = 100_000;

/// Celebrities whose recent posts the in-process cache holds.
const IN_PROCESS_AUTHORS: usize = 10_000;

pub struct Application {
    listener: TcpListener,
    router: Router,
    feed: Arc<Feed>,
    database: Database,
    topics: Arc<dyn Topics>,
    timelines: Arc<dyn TimelineCache>,
    fanout: Arc<fanout::Context>,
    wake: Arc<Notify>,
    settings: Settings,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let database = Database::connect(&settings.backends.database, SCHEMA)
            .await
            .context("connecting to the database")?;
        // Pull announces nothing, so it does not connect: it then needs no broker, and takes no
        // hold on the embedded topics file another process may own.
        let topics: Arc<dyn Topics> = match settings.strategy {
            Strategy::Pull => Arc::new(MemoryTopics::new()),
            Strategy::Push | Strategy::Hybrid => topic::connect(&settings.backends.topics)
                .await
                .context("connecting to the topics")?,
        };
        Self::build_with(settings, database, topics, Arc::new(SystemClock)).await
    }

    /// Builds on a database and topics the caller connected (tests pass their own, and a manual
    /// clock).
    pub async fn build_with(
        settings: Settings,
        database: Database,
        topics: Arc<dyn Topics>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        database
            .migrate(store::MIGRATIONS)
            .await
            .context("migrating the database")?;
        let faults = FaultSwitches::new(SYSTEM);
        let database_switch = faults.add("database");
        let (redis_switch, worker_switch) = match settings.strategy {
            Strategy::Push | Strategy::Hybrid => (faults.add("redis"), faults.add("fanout-worker")),
            // Switches no one can reach, so that the wrapping below is the same for every
            // strategy.
            Strategy::Pull => (
                FaultSwitch::new(SYSTEM, "redis"),
                FaultSwitch::new(SYSTEM, "fanout-worker"),
            ),
        };
        let store: Arc<dyn store::FeedStore> = Arc::new(FaultyStore::new(
            store::for_database(&database),
            database_switch.clone(),
        ));
        let timelines = cache::connect(&TimelinesConfig {
            redis_url: settings.backends.redis_url.clone(),
            namespace: settings.cache_namespace.clone(),
            cap: settings.timelines.cap,
            max_timelines: IN_PROCESS_ENTRIES,
            redis_timeout: REDIS_TIMEOUT,
            ttl: settings.timelines.active_window,
            clock: clock.clone(),
        })
        .await
        .context("connecting to the timelines cache")?;
        let timelines: Arc<dyn TimelineCache> = Arc::new(FaultyTimelines::new(
            timelines,
            redis_switch.clone(),
            REDIS_TIMEOUT,
        ));
        let post_cache = platform::cache::connect(&CacheConfig {
            redis_url: settings.backends.redis_url.clone(),
            namespace: settings.cache_namespace.clone(),
            max_entries: NonZeroUsize::new(IN_PROCESS_ENTRIES).expect("not zero"),
            redis_timeout: REDIS_TIMEOUT,
            // A near copy would outlive a delete's tombstone in other instances' memory.
            near_ttl: None,
        })
        .await
        .context("connecting to the post cache")?;
        let post_cache: Arc<dyn platform::cache::Cache> = Arc::new(FaultyCache::new(
            post_cache,
            redis_switch.clone(),
            REDIS_TIMEOUT,
        ));
        let posts = Arc::new(PostCache::new(
            post_cache.clone(),
            store.clone(),
            settings.post_cache_ttl,
        ));
        let celebrities = match settings.strategy {
            Strategy::Hybrid => {
                // Each celebrity's recent posts: timelines of their own, under their own names.
                let authors = cache::connect(&TimelinesConfig {
                    redis_url: settings.backends.redis_url.clone(),
                    namespace: format!("{}authors:", settings.cache_namespace),
                    cap: settings.timelines.cap,
                    max_timelines: IN_PROCESS_AUTHORS,
                    redis_timeout: REDIS_TIMEOUT,
                    ttl: settings.timelines.active_window,
                    clock: clock.clone(),
                })
                .await
                .context("connecting to the celebrities' timelines")?;
                let authors = Arc::new(FaultyTimelines::new(
                    authors,
                    redis_switch.clone(),
                    REDIS_TIMEOUT,
                ));
                Some(Arc::new(Celebrities::new(
                    store.clone(),
                    authors,
                    post_cache,
                    settings.timelines,
                )))
            }
            Strategy::Push | Strategy::Pull => None,
        };
        let strategy = timeline::for_strategy(
            settings.strategy,
            store.clone(),
            Caches {
                timelines: timelines.clone(),
                posts,
                celebrities: celebrities.clone(),
                clock: clock.clone(),
                settings: settings.timelines,
            },
        );
        if strategy.fans_out() {
            topics
                .ensure_topic(&settings.fanout.topic, settings.fanout.partitions)
                .await
                .with_context(|| format!("creating the topic {}", settings.fanout.topic))?;
        }
        let wake = Arc::new(Notify::new());
        let stats = Arc::new(FanoutStats::default());
        let feed = Arc::new(Feed::new(
            store.clone(),
            strategy,
            Arc::new(Snowflake::new(settings.instance, clock.clone())),
            clock.clone(),
            PostEvents {
                topic: settings.fanout.topic.clone(),
                wake: wake.clone(),
                stats: stats.clone(),
            },
        ));
        let fanout = Arc::new(fanout::Context {
            strategy: settings.strategy,
            store,
            timelines: timelines.clone(),
            celebrities,
            clock,
            settings: settings.timelines,
            batch: settings.fanout.batch.max(1),
            stats,
            switch: worker_switch,
        });
        // Required: every answer, feeds included, comes from the database (a cache miss falls
        // back to it; a timelines cache that fails is a 503 on the cached strategies). Probed
        // through its switch, so that switched unreachable it is not ready, as when it is down.
        let mut readiness = Readiness::new().database_behind(
            database.clone(),
            database_switch.clone(),
            Need::Required,
        );
        if settings.strategy != Strategy::Pull {
            let engine = |backend: &str| match backend {
                "memory" => "in-process".to_owned(),
                other => other.to_owned(),
            };
            readiness = readiness
                .backend("timelines", engine(timelines.backend()))
                .backend("topics", engine(topics.backend()));
        }
        let router = http::app(
            AppState { feed: feed.clone() },
            readiness,
            faults.router(settings.admin_token.clone()),
        );
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        Ok(Self {
            listener,
            router,
            feed,
            database,
            topics,
            timelines,
            fanout,
            wake,
            settings,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The service's router, to drive with `oneshot` in tests.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }

    /// The timelines cache, to look inside in tests.
    pub fn timelines(&self) -> &Arc<dyn TimelineCache> {
        &self.timelines
    }

    /// What the fan-out workers have done since start-up.
    pub fn fanout_stats(&self) -> &Arc<FanoutStats> {
        &self.fanout.stats
    }

    /// The topic post events go to.
    pub fn posts_topic(&self) -> &str {
        &self.settings.fanout.topic
    }

    /// Starts the outbox relay and the fan-out workers, if the strategy fans out (`None` for
    /// pull). `run_until_stopped` does this; tests call it to control when fan-out runs.
    pub async fn start_fanout(&self) -> anyhow::Result<Option<Fanout>> {
        if !self.feed.timelines().fans_out() {
            return Ok(None);
        }
        Fanout::start(
            self.fanout.clone(),
            &self.settings.fanout,
            &*self.topics,
            self.database.clone(),
            self.wake.clone(),
        )
        .await
        .context("starting the fan-out")
        .map(Some)
    }

    /// What the service runs on, for banners: `SQLite at data/feed-service.sqlite, pull (fan-out
    /// on read), instance 0`.
    pub fn describe_backends(&self) -> String {
        let caches = match self.feed.timelines().fans_out() {
            true => format!(
                ", {} timelines, {} topics",
                self.timelines.backend(),
                self.topics.backend()
            ),
            false => String::new(),
        };
        format!(
            "{}, {}{caches}, instance {}",
            self.settings.backends.database,
            self.settings.strategy,
            self.settings.instance.get()
        )
    }

    /// Serves until `shutdown` completes, with the fan-out running; lets in-flight requests
    /// finish, stops the fan-out between events, then closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let fanout = self.start_fanout().await?;
        tracing::info!(
            addr = %self.local_addr(),
            database = self.database.engine(),
            strategy = %self.settings.strategy,
            "feed-service listening"
        );
        let served = platform::http::serve(self.listener, self.router, shutdown).await;
        if let Some(fanout) = fanout {
            fanout.stop().await;
        }
        self.database.close().await;
        served.context("serving HTTP")
    }
}
