//! Configuration from environment variables.
//!
//! Each system reads its own settings in its own `Settings::from_env()`; this module holds what
//! they share: a typed reader whose errors name the variable, and [`Backends`], the three
//! variables that switch a system from its embedded defaults to the real engines.
//!
//! Environment variables rather than a config file because that is what containers, CI and
//! `docker-compose.yml` pass most easily, and because the defaults must work with nothing set.

use std::{fmt, path::PathBuf, str::FromStr};

/// A variable that is set but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?} is not valid: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// Reads `name` and parses it; unset or empty means `None`.
pub fn env_opt<T>(name: &str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value
                .trim()
                .parse()
                .map(Some)
                .map_err(|err: T::Err| ConfigError {
                    name: name.to_owned(),
                    value: value.clone(),
                    reason: err.to_string(),
                })
        }
        _ => Ok(None),
    }
}

/// Reads `name` and parses it, falling back to `default` when it is unset or empty.
pub fn env_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    Ok(env_opt(name)?.unwrap_or(default))
}

/// Like [`env_or`] for a count or a duration that must be at least 1 (a block of no IDs, a
/// flush every 0 ms).
pub fn env_positive(name: &str, default: u64) -> Result<u64, ConfigError> {
    match env_or(name, default)? {
        0 => Err(ConfigError {
            name: name.into(),
            value: "0".into(),
            reason: "must be at least 1".into(),
        }),
        value => Ok(value),
    }
}

/// Where a system keeps its relational data.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// `DATABASE_URL=postgres://…`: PostgreSQL. Each system gets its own schema in that database.
    Postgres { url: String },
    /// Unset `DATABASE_URL` (or `sqlite:…`): an embedded SQLite file that survives restarts.
    Sqlite { path: PathBuf },
}

/// `SDLAB_DATA_DIR`, where the embedded backends keep their files (`./data` by default), and
/// where tools put what they make for them (the feed's seed manifest).
pub fn data_dir() -> Result<PathBuf, ConfigError> {
    env_or("SDLAB_DATA_DIR", PathBuf::from("data"))
}

impl DatabaseConfig {
    /// Reads `DATABASE_URL`; unset means `$SDLAB_DATA_DIR/<system>.sqlite` (`./data` by default).
    pub fn from_env(system: &str) -> Result<Self, ConfigError> {
        match env_opt::<String>("DATABASE_URL")? {
            Some(url) => Self::from_url(&url),
            None => Ok(Self::Sqlite {
                path: data_dir()?.join(format!("{system}.sqlite")),
            }),
        }
    }

    fn from_url(url: &str) -> Result<Self, ConfigError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres {
                url: url.to_owned(),
            })
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            Ok(Self::Sqlite {
                path: PathBuf::from(path.trim_start_matches("//")),
            })
        } else {
            Err(ConfigError {
                name: "DATABASE_URL".into(),
                value: redact(url),
                reason: "expected postgres://… or sqlite:…".into(),
            })
        }
    }
}

/// Prints the URL without its password, for start-up banners and logs.
impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres { url } => write!(f, "PostgreSQL at {}", redact(url)),
            Self::Sqlite { path } => write!(f, "SQLite at {}", path.display()),
        }
    }
}

/// Where the topics are (`platform::topic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicsConfig {
    /// `KAFKA_BROKERS=host:port,…`: Kafka.
    Kafka { brokers: String },
    /// Unset `KAFKA_BROKERS`: the embedded transport, in a SQLite file that survives restarts.
    /// One file for every system, unlike the databases: systems share topics (the notifier
    /// reads `payments.events`), and the lab runs them all in one process, which owns the file.
    Embedded { path: PathBuf },
}

impl TopicsConfig {
    /// Reads `KAFKA_BROKERS`; unset means `$SDLAB_DATA_DIR/topics.sqlite` (`./data` by default).
    pub fn from_env() -> Result<Self, ConfigError> {
        match env_opt::<String>("KAFKA_BROKERS")? {
            Some(brokers) => Ok(Self::Kafka { brokers }),
            None => Ok(Self::Embedded {
                path: data_dir()?.join("topics.sqlite"),
            }),
        }
    }
}

impl fmt::Display for TopicsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kafka { brokers } => write!(f, "Kafka at {brokers}"),
            Self::Embedded { path } => write!(f, "embedded topics at {}", path.display()),
        }
    }
}

/// The backend choice every system makes from the same three variables.
#[derive(Debug, Clone)]
pub struct Backends {
    pub database: DatabaseConfig,
    /// `REDIS_URL`: Redis when set, the in-process cache otherwise.
    pub redis_url: Option<String>,
    /// `KAFKA_BROKERS`: Kafka when set, the embedded transport's file otherwise.
    pub topics: TopicsConfig,
}

impl Backends {
    pub fn from_env(system: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseConfig::from_env(system)?,
            redis_url: env_opt("REDIS_URL")?,
            topics: TopicsConfig::from_env()?,
        })
    }

    /// What a system's `Settings::for_tests()` starts with: embedded, at placeholder paths. Tests
    /// connect backends of their own (`testing::TestBackends`) and hand them to the system's
    /// `Application::build_with`, which does not read these paths.
    pub fn for_tests() -> Self {
        Self {
            database: DatabaseConfig::Sqlite {
                path: "unused".into(),
            },
            redis_url: None,
            topics: TopicsConfig::Embedded {
                path: "unused".into(),
            },
        }
    }
}

/// Replaces the password in `scheme://user:password@host/…` with `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_select_postgres() {
        let config = DatabaseConfig::from_url("postgres://postgres@127.0.0.1/x").unwrap();
        assert!(matches!(config, DatabaseConfig::Postgres { .. }));
    }

    #[test]
    fn sqlite_urls_select_the_named_file() {
        let config = DatabaseConfig::from_url("sqlite://tmp/x.sqlite").unwrap();
        assert_eq!(
            config,
            DatabaseConfig::Sqlite {
                path: "tmp/x.sqlite".into()
            }
        );
    }

    #[test]
    fn other_schemes_are_rejected_without_leaking_the_password() {
        let err = DatabaseConfig::from_url("mysql://root:hunter2@db/x").unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"));
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
