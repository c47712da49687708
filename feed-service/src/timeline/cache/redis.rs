//! The Redis timelines: one sorted set per reader, `<namespace>timeline:<user id>`, members the
//! post ids in decimal, scores the ids themselves.
//!
//! Each operation is one pipeline, one round trip however many readers a fan-out batch names:
//! `ZADD` then `ZREMRANGEBYRANK key 1 -(cap+1)` per reader, which keeps rank 0 (the `built`
//! sentinel, score 0) and the `cap` highest ids. In a timeline without the sentinel, which is
//! rebuilt on its next read anyway, the same command keeps one id more. A Lua script could make
//! insert-and-trim atomic; it need not be, since a reader between the two sees one id too many
//! for a moment, and a script per batch is harder to read than two commands.
//!
//! The connection is platform's choice for its cache (`platform/src/cache/redis.rs`): one
//! multiplexed `ConnectionManager` that reconnects by itself, with a response timeout.

use std::time::Duration;

use async_trait::async_trait;
use platform::cache::CacheError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Slice, TimelineCache};
use crate::domain::{PostId, UserId};

/// The member that marks a timeline as built; score 0, below every post id.
const BUILT: &str = "built";

#[derive(Clone)]
pub struct RedisTimelines {
    connection: ConnectionManager,
    namespace: String,
    cap: usize,
}

impl std::fmt::Debug for RedisTimelines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTimelines")
            .field("namespace", &self.namespace)
            .field("cap", &self.cap)
            .finish()
    }
}

impl RedisTimelines {
    /// Connects, failing now if Redis is unreachable.
    pub async fn connect(
        url: &str,
        namespace: String,
        cap: usize,
        timeout: Duration,
    ) -> Result<Self, CacheError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_secs(1))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2);
        Ok(Self {
            connection: client.get_connection_manager_with_config(config).await?,
            namespace,
            cap: cap.max(1),
        })
    }

    fn key(&self, reader: UserId) -> String {
        format!("{}timeline:{reader}", self.namespace)
    }

    /// Keeps the sentinel and the `cap` newest ids.
    fn trim(&self, pipe: &mut redis::Pipeline, key: &str) {
        pipe.cmd("ZREMRANGEBYRANK")
            .arg(key)
            .arg(1)
            .arg(-(self.cap as i64) - 1)
            .ignore();
    }
}

/// A score bound strictly below `below`, or the top.
fn upper(below: Option<PostId>) -> String {
    below.map_or_else(|| "+inf".to_owned(), |below| format!("({below}"))
}

fn ids(members: Vec<(String, f64)>) -> Vec<PostId> {
    members
        .into_iter()
        .filter_map(|(_, score)| PostId::new(score as u64))
        .collect()
}

#[async_trait]
impl TimelineCache for RedisTimelines {
    async fn insert(&self, readers: &[UserId], post: PostId) -> Result<(), CacheError> {
        if readers.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for reader in readers {
            let key = self.key(*reader);
            pipe.cmd("ZADD")
                .arg(&key)
                .arg(post.get())
                .arg(post.get())
                .ignore();
            self.trim(&mut pipe, &key);
        }
        let () = pipe.query_async(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn remove(&self, readers: &[UserId], post: PostId) -> Result<(), CacheError> {
        if readers.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for reader in readers {
            pipe.cmd("ZREM")
                .arg(self.key(*reader))
                .arg(post.get())
                .ignore();
        }
        let () = pipe.query_async(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn add(&self, reader: UserId, posts: &[PostId], built: bool) -> Result<(), CacheError> {
        if posts.is_empty() && !built {
            return Ok(());
        }
        let key = self.key(reader);
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(&key);
        if built {
            zadd.arg(0).arg(BUILT);
        }
        for post in posts {
            zadd.arg(post.get()).arg(post.get());
        }
        let mut pipe = redis::pipe();
        pipe.add_command(zadd).ignore();
        self.trim(&mut pipe, &key);
        let () = pipe.query_async(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn remove_posts(&self, reader: UserId, posts: &[PostId]) -> Result<(), CacheError> {
        if posts.is_empty() {
            return Ok(());
        }
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(self.key(reader));
        for post in posts {
            zrem.arg(post.get());
        }
        let () = zrem.query_async(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn range(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Option<Slice>, CacheError> {
        let key = self.key(reader);
        let (built, members, size): (Option<f64>, Vec<(String, f64)>, usize) = redis::pipe()
            .cmd("ZSCORE")
            .arg(&key)
            .arg(BUILT)
            .cmd("ZREVRANGEBYSCORE")
            .arg(&key)
            .arg(upper(below))
            .arg("(0")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .cmd("ZCARD")
            .arg(&key)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(built.map(|_| Slice {
            ids: ids(members),
            size: size.saturating_sub(1),
        }))
    }

    async fn tail(&self, reader: UserId) -> Result<Option<PostId>, CacheError> {
        let key = self.key(reader);
        let (built, members): (Option<f64>, Vec<(String, f64)>) = redis::pipe()
            .cmd("ZSCORE")
            .arg(&key)
            .arg(BUILT)
            .cmd("ZRANGEBYSCORE")
            .arg(&key)
            .arg("(0")
            .arg("+inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(1)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(built.and_then(|_| ids(members).first().copied()))
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_redis_timelines_behave_like_every_timelines_cache_when_redis_url_is_set() {
        let Some(url) = platform::testing::redis_url() else {
            return;
        };
        let cache = RedisTimelines::connect(
            &url,
            platform::testing::unique_namespace(),
            3,
            Duration::from_secs(2),
        )
        .await
        .expect("REDIS_URL is set but Redis is not reachable");

        super::super::conformance::all(&cache).await;
    }
}
