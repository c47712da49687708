//! The feed service's settings, from environment variables. Every one has a default that works on
//! a laptop with nothing else running.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FEED_ADDR` | `127.0.0.1:8084` | where the API listens |
//! | `FEED_INSTANCE_ID` | `0` | this instance's number, 0 to 15, in every id it makes; each instance needs its own (`src/ids.rs`) |
//! | `FEED_STRATEGY` | `pull` | how home feeds are built: `pull` (fan-out on read), `push` (fan-out on write) or `hybrid` (`src/timeline/`) |
//! | `FEED_TIMELINE_CAP` | `800` | post ids kept per cached timeline (push, hybrid) |
//! | `FEED_CELEBRITY_THRESHOLD` | `10000` | in hybrid, authors with more followers are merged in on read, not fanned out |
//! | `FEED_ACTIVE_WINDOW` | `30d` | fan-out skips readers who have not read their feed for this long, and a cached timeline unread for this long expires |
//! | `FEED_POSTS_TOPIC` | `feed.posts` | the topic of post events; its fan-out consumer group is `<topic>.fanout` |
//! | `FEED_FANOUT_WORKERS` | `2` | fan-out consumers in this process |
//! | `FEED_POST_CACHE_TTL` | `1d` | how long a hydrated post stays in the post cache |
//! | `SDLAB_ADMIN_TOKEN` | unset: the switches stay shut over HTTP | the token (`sk_` and 40 hex digits) that opens the fault switches at `/admin/faults` (DESIGN.md, "Break it") |
//! | `DATABASE_URL`, `REDIS_URL`, `KAFKA_BROKERS` | unset | the real backends (see `platform::config`); unset, SQLite, in-process caches and the embedded topics |
//!
//! The seed tool (`src/bin/feed-seed/`, `cargo run --release -p feed-service --bin feed-seed --
//! --help`) reads the same variables, so it writes the graph where the service will read it, and
//! takes `FEED_CELEBRITY_THRESHOLD` and `FEED_INSTANCE_ID` for its manifest and its ids.

use std::{net::SocketAddr, time::Duration};

use platform::{
    auth::AdminToken,
    config::{Backends, ConfigError, env_opt, env_or, env_positive},
};

use crate::{
    SYSTEM,
    fanout::FanoutSettings,
    ids::InstanceId,
    timeline::{Strategy, TimelineSettings},
};

#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub backends: Backends,
    pub instance: InstanceId,
    pub strategy: Strategy,
    pub timelines: TimelineSettings,
    pub fanout: FanoutSettings,
    pub post_cache_ttl: Duration,
    /// Before every Redis key, timelines and post cache alike (`feed-service:`).
    pub cache_namespace: String,
    /// Opens the fault switches over HTTP (`SDLAB_ADMIN_TOKEN`).
    pub admin_token: Option<AdminToken>,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let instance: u64 = env_or("FEED_INSTANCE_ID", 0)?;
        Ok(Self {
            addr: env_or("FEED_ADDR", SocketAddr::from(([127, 0, 0, 1], 8084)))?,
            backends: Backends::from_env(SYSTEM)?,
            instance: InstanceId::new(instance).ok_or_else(|| ConfigError {
                name: "FEED_INSTANCE_ID".into(),
                value: instance.to_string(),
                reason: format!("must be 0 to {}", InstanceId::MAX),
            })?,
            strategy: env_or("FEED_STRATEGY", Strategy::Pull)?,
            timelines: TimelineSettings {
                cap: env_positive("FEED_TIMELINE_CAP", 800)? as usize,
                celebrity_threshold: env_or("FEED_CELEBRITY_THRESHOLD", 10_000)?,
                active_window: duration_or("FEED_ACTIVE_WINDOW", Duration::from_secs(30 * 86_400))?,
            },
            fanout: FanoutSettings {
                topic: env_or("FEED_POSTS_TOPIC", "feed.posts".to_owned())?,
                partitions: 8,
                workers: env_positive("FEED_FANOUT_WORKERS", 2)? as usize,
                batch: 1_000,
                relay_interval: Duration::from_secs(1),
            },
            post_cache_ttl: duration_or("FEED_POST_CACHE_TTL", Duration::from_secs(86_400))?,
            cache_namespace: format!("{SYSTEM}:"),
            admin_token: AdminToken::from_env()?,
        })
    }

    /// Settings for tests: any free port, instance 0, pull, a topic and a key namespace of their
    /// own; the backends are the test's own.
    pub fn for_tests() -> Self {
        let unique = uuid::Uuid::new_v4().simple();
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            backends: Backends::for_tests(),
            instance: InstanceId::new(0).expect("0 is an instance number"),
            strategy: Strategy::Pull,
            timelines: TimelineSettings {
                cap: 800,
                celebrity_threshold: 10_000,
                active_window: Duration::from_secs(30 * 86_400),
            },
            fanout: FanoutSettings {
                topic: format!("test.{unique}.posts"),
                partitions: 2,
                workers: 2,
                batch: 1_000,
                relay_interval: Duration::from_millis(100),
            },
            post_cache_ttl: Duration::from_secs(600),
            cache_namespace: format!("test:{unique}:"),
            admin_token: None,
        }
    }
}

fn duration_or(name: &str, default: Duration) -> Result<Duration, ConfigError> {
    let Some(text) = env_opt::<String>(name)? else {
        return Ok(default);
    };
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| ConfigError {
            name: name.into(),
            value: text,
            reason: "expected a duration such as 12h or 30d".into(),
        })
}
