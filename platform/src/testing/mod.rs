//! Fresh, isolated backends for each test, real or embedded by the same variables as production.
//!
//! - `DATABASE_URL` set: a new PostgreSQL schema per test (`test_<uuid>`), dropped when the test's
//!   [`TestBackends`] is dropped. A schema is much cheaper than a database per test and isolates
//!   just as well, since every system already works inside its own schema.
//! - `DATABASE_URL` unset: a new SQLite file in a temporary directory.
//! - `REDIS_URL` set: Redis, with every key under a per-test namespace (`test:<uuid>:`).
//! - `REDIS_URL` unset: a new in-process cache.
//! - `KAFKA_BROKERS` set: Kafka, with a new topic per test ([`unique_topic`]); unset: a new
//!   embedded transport in a temporary directory ([`TestTopics`], which can also restart it).
//!
//! When a variable is set and its server cannot be reached, the test panics with a message that
//! says so. It never falls back to the embedded backend: a suite that silently skipped its real
//! backend would pass while proving nothing.

pub mod http;

use std::{num::NonZeroUsize, sync::Arc, time::Duration};

use crate::{
    cache::{Cache, CacheConfig},
    config::{DatabaseConfig, TopicsConfig, env_opt},
    db::{self, Database},
    topic::{self, SqliteTopics, Topics},
};

/// `REDIS_URL`, if the tests are to run on Redis.
pub fn redis_url() -> Option<String> {
    env_opt("REDIS_URL").unwrap()
}

/// A topic name no other test uses: `test.<uuid>`.
pub fn unique_topic() -> String {
    format!("test.{}", uuid::Uuid::new_v4().simple())
}

/// A key prefix no other test uses: `test:<uuid>:`.
pub fn unique_namespace() -> String {
    format!("test:{}:", uuid::Uuid::new_v4().simple())
}

/// The topics a test uses: Kafka when `KAFKA_BROKERS` is set (tests keep apart by using
/// [`unique_topic`]s), otherwise a durable embedded transport of its own, in a temporary
/// directory that goes when this does.
pub struct TestTopics {
    pub topics: Arc<dyn Topics>,
    pub config: TopicsConfig,
    _dir: Option<tempfile::TempDir>,
}

impl TestTopics {
    pub async fn from_env() -> Self {
        match env_opt::<String>("KAFKA_BROKERS").unwrap() {
            Some(brokers) => {
                let config = TopicsConfig::Kafka { brokers };
                Self {
                    topics: Self::connect(&config).await,
                    config,
                    _dir: None,
                }
            }
            None => Self::embedded().await,
        }
    }

    /// A new embedded transport, whatever `KAFKA_BROKERS` says (for what only it can show).
    pub async fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let config = TopicsConfig::Embedded {
            path: dir.path().join("topics.sqlite"),
        };
        Self {
            topics: Self::connect(&config).await,
            config,
            _dir: Some(dir),
        }
    }

    /// Connects again, as a restarted process would: the embedded transport reads its file
    /// again, Kafka is a new client of the same cluster.
    ///
    /// Everything else that holds the transport (an application, a consumer) must be dropped
    /// first; it panics otherwise, since the embedded transport would then still be the one in
    /// memory, and the test would prove nothing about the file.
    pub async fn restart(self) -> Self {
        let Self {
            topics,
            config,
            _dir,
        } = self;
        drop(topics);
        if let TopicsConfig::Embedded { path } = &config {
            assert!(
                !SqliteTopics::is_open(path).await,
                "restarting the topics while something still holds them: drop it first"
            );
        }
        let topics = Self::connect(&config).await;
        Self {
            topics,
            config,
            _dir,
        }
    }

    async fn connect(config: &TopicsConfig) -> Arc<dyn Topics> {
        topic::connect(config)
            .await
            .unwrap_or_else(|err| panic!("the test topics ({config}) are not reachable: {err}"))
    }
}

pub struct TestBackends {
    pub database: Database,
    pub cache: Arc<dyn Cache>,
    database_config: DatabaseConfig,
    schema: String,
    cache_config: CacheConfig,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { url: String },
}

impl TestBackends {
    /// Backends for one test, chosen by `DATABASE_URL` and `REDIS_URL`.
    pub async fn from_env() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let schema = format!("test_{id}");

        let (database_config, cleanup) = match env_opt::<String>("DATABASE_URL").unwrap() {
            Some(url) => (
                DatabaseConfig::Postgres { url: url.clone() },
                Cleanup::Postgres { url },
            ),
            None => {
                let dir = tempfile::tempdir().expect("creating a temporary directory");
                let path = dir.path().join("test.sqlite");
                (DatabaseConfig::Sqlite { path }, Cleanup::Sqlite(dir))
            }
        };
        let database = Database::connect(&database_config, &schema)
            .await
            .unwrap_or_else(|err| {
                panic!("the test database ({database_config}) is not reachable: {err:?}")
            });

        let cache_config = CacheConfig {
            redis_url: env_opt("REDIS_URL").unwrap(),
            namespace: format!("test:{id}:"),
            max_entries: NonZeroUsize::new(10_000).unwrap(),
            redis_timeout: Duration::from_secs(2),
            // Tests read Redis directly, so a write is visible to every instance at once.
            near_ttl: None,
        };
        let cache = crate::cache::connect(&cache_config)
            .await
            .unwrap_or_else(|err| panic!("REDIS_URL is set but Redis is not reachable: {err:?}"));

        Self {
            database,
            cache,
            database_config,
            schema,
            cache_config,
            cleanup,
        }
    }

    /// A second, independent connection pool to the same database and cache, as another instance
    /// of the service would have (the in-process cache, by nature, is not shared).
    pub async fn another_instance(&self) -> (Database, Arc<dyn Cache>) {
        let database = Database::connect(&self.database_config, &self.schema)
            .await
            .expect("connecting again to the test database");
        let cache = crate::cache::connect(&self.cache_config)
            .await
            .expect("connecting again to the test cache");
        (database, cache)
    }

    /// `"postgres+redis"`, `"sqlite+memory"`…, for messages.
    pub fn describe(&self) -> String {
        format!("{}+{}", self.database.engine(), self.cache.backend())
    }
}

impl Drop for TestBackends {
    fn drop(&mut self) {
        if let Cleanup::Postgres { url } = &self.cleanup {
            let (url, schema) = (url.clone(), self.schema.clone());
            // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived
            // runtime on its own thread drops the schema and is joined before the test returns.
            let dropped = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("building a runtime to clean up")
                    .block_on(db::drop_schema(&url, &schema))
            })
            .join();
            if let Ok(Err(err)) = dropped {
                eprintln!("warning: could not drop test schema {}: {err}", self.schema);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cache::conformance,
        topic::{Consumer, Delivery, Message},
    };

    #[tokio::test]
    async fn the_configured_cache_behaves_like_every_cache() {
        let backends = TestBackends::from_env().await;
        conformance::all(backends.cache.as_ref()).await;
    }

    /// The next record, with a guard against a hang (a Kafka group takes seconds to form).
    async fn recv(consumer: &dyn Consumer) -> Delivery {
        tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .expect("no record within a minute")
            .unwrap()
    }

    #[tokio::test]
    async fn published_records_and_commits_outlive_a_restart_of_the_configured_topics() {
        let topics = TestTopics::from_env().await;
        let (topic, group) = (unique_topic(), unique_namespace());
        topics.topics.ensure_topic(&topic, 1).await.unwrap();
        let producer = topics.topics.producer();
        for payload in ["processed", "not yet"] {
            producer
                .publish(Message::new(&topic, "k", payload))
                .await
                .unwrap();
        }
        let consumer = topics.topics.subscribe(&group, &[&topic]).await.unwrap();
        let processed = recv(&*consumer).await;
        consumer.commit(&processed).await.unwrap();
        drop((consumer, producer));

        let topics = topics.restart().await;
        let consumer = topics.topics.subscribe(&group, &[&topic]).await.unwrap();

        assert_eq!(recv(&*consumer).await.payload, b"not yet");
    }

    #[tokio::test]
    #[should_panic(expected = "while something still holds them")]
    async fn restarting_embedded_topics_that_something_still_holds_is_refused() {
        let topics = TestTopics::embedded().await;
        let _still_held = topics.topics.producer();

        topics.restart().await;
    }

    #[tokio::test]
    async fn the_configured_database_answers() {
        let backends = TestBackends::from_env().await;
        backends.database.ping().await.unwrap();
    }

    #[tokio::test]
    async fn tests_do_not_see_each_others_cache_entries() {
        let a = TestBackends::from_env().await;
        let b = TestBackends::from_env().await;
        a.cache
            .set("shared-name", b"a", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(b.cache.get("shared-name").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_cache_entry_expires_after_its_ttl_on_the_configured_backend() {
        // Redis keeps time itself, so this waits for real; the TTL is short enough not to matter.
        let backends = TestBackends::from_env().await;
        backends
            .cache
            .set("short-lived", b"v", Duration::from_millis(50))
            .await
            .unwrap();
        assert!(backends.cache.get("short-lived").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(backends.cache.get("short-lived").await.unwrap(), None);
    }
}
