//! The Redis cache: `SET key value PX ttl`, `GET`, `DEL` through one multiplexed connection.
//!
//! `ConnectionManager` pipelines every caller's commands over a single connection and reconnects
//! in the background when it drops; a pool of connections would add nothing for commands this
//! small. Each command has a response timeout, so a Redis that hangs costs a caller at most that
//! long before it falls back to the database.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Cache, CacheError};

#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    namespace: String,
    /// `host:port`, from the client's parsed URL (no password).
    address: String,
}

impl RedisCache {
    /// Connects (failing if Redis is unreachable now, so a misconfigured `REDIS_URL` is caught at
    /// start-up rather than on the first request).
    pub async fn connect(
        url: &str,
        namespace: String,
        timeout: Duration,
    ) -> Result<Self, CacheError> {
        let client = redis::Client::open(url)?;
        let address = client.get_connection_info().addr().to_string();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_secs(1))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2);
        let connection = client.get_connection_manager_with_config(config).await?;
        Ok(Self {
            connection,
            namespace,
            address,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.namespace)
    }
}

/// Rounded up: a TTL of 0 ms is an error to Redis, and a shorter TTL than asked for never is.
fn ttl_millis(ttl: Duration) -> u64 {
    ttl.as_nanos().div_ceil(1_000_000).max(1) as u64
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("namespace", &self.namespace)
            .finish()
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut connection = self.connection.clone();
        Ok(redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut connection)
            .await?)
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        // `MGET` with no keys is an error in Redis; no keys is no values.
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("MGET");
        for key in keys {
            command.arg(self.key(key));
        }
        Ok(command.query_async(&mut connection).await?)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let () = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl))
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        let mut connection = self.connection.clone();
        // `SET … NX` answers OK when it stored the value and nil when the key already existed.
        let stored: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl))
            .arg("NX")
            .query_async(&mut connection)
            .await?;
        Ok(stored.is_some())
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let _removed: u64 = redis::cmd("DEL")
            .arg(self.key(key))
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let _pong: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    fn describe(&self) -> String {
        format!("Redis at {}", self.address)
    }
}
