//! The notifier's settings, from environment variables. Every one has a default that works on a
//! laptop with nothing else running.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `NOTIFIER_ADDR` | `127.0.0.1:8083` | where the API listens |
//! | `DATABASE_URL`, `KAFKA_BROKERS` | unset | the real backends (see `platform::config`) |

use std::net::SocketAddr;

use platform::config::{Backends, ConfigError, env_or};

/// The name the notifier goes by: its PostgreSQL schema, SQLite file, metrics.
pub const SYSTEM: &str = "notifier";

#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub backends: Backends,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            addr: env_or("NOTIFIER_ADDR", SocketAddr::from(([127, 0, 0, 1], 8083)))?,
            backends: Backends::from_env(SYSTEM)?,
        })
    }

    /// Settings for tests: every default, on a free port.
    pub fn for_tests() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            backends: Backends {
                database: platform::config::DatabaseConfig::Sqlite {
                    path: "unused".into(),
                },
                redis_url: None,
                kafka_brokers: None,
            },
        }
    }
}
