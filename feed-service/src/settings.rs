//! The feed service's settings, from environment variables. Every one has a default that works on
//! a laptop with nothing else running.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FEED_ADDR` | `127.0.0.1:8084` | where the API listens |
//! | `FEED_INSTANCE_ID` | `0` | this instance's number, 0 to 15, in every id it makes; each instance needs its own (`src/ids.rs`) |
//! | `FEED_STRATEGY` | `pull` | how home feeds are built: `pull` (fan-out on read); `push` and `hybrid` are planned |
//! | `DATABASE_URL` | unset | the real database (see `platform::config`) |

use std::net::SocketAddr;

use platform::config::{Backends, ConfigError, env_or};

use crate::{ids::InstanceId, timeline::Strategy};

/// The name the feed service goes by: its SQLite file, metrics.
pub const SYSTEM: &str = "feed-service";

#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub backends: Backends,
    pub instance: InstanceId,
    pub strategy: Strategy,
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
        })
    }

    /// Settings for tests: any free port, instance 0, pull; the backends are the test's own.
    pub fn for_tests() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            backends: Backends {
                database: platform::config::DatabaseConfig::Sqlite {
                    path: "unused".into(),
                },
                redis_url: None,
                topics: platform::config::TopicsConfig::Embedded {
                    path: "unused".into(),
                },
            },
            instance: InstanceId::new(0).expect("0 is an instance number"),
            strategy: Strategy::Pull,
        }
    }
}
