//! The Redis timelines: one sorted set per reader, `<namespace>timeline:<user id>`, members the
//! post ids in decimal, scores the ids themselves.
//!
//! Each operation is one pipeline, one round trip however many readers a fan-out batch names:
//! `ZADD`, `PEXPIRE key <ttl> NX` (a timeline the insert made gets the time to live, one that has
//! it keeps it; Redis 7) then `ZREMRANGEBYRANK key 1 -(cap+1)` per reader, which keeps rank 0
//! (the `built` sentinel, score 0) and the `cap` highest ids. A `whole` sentinel (score 0 too,
//! rank 1) is the first member it removes, which is what ends wholeness at the cap (`mod.rs`). In
//! a timeline without the `built` sentinel, which is rebuilt on its next read anyway, the same
//! command keeps one id more. A Lua script could make
//! insert-and-trim atomic; it need not be, since a reader between the two sees one id too many
//! for a moment, and a script per batch is harder to read than two commands.
//!
//! A rebuild sets the time to live (`PEXPIRE`), and a read renews it in the pipeline that checks
//! the sentinels and counts the members ([`TimelineCache::touch`]).
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

/// The member that marks a built timeline as whole (`mod.rs`); score 0 too, and after `built`
/// among equal scores, so it has rank 1: the first member the trim removes, which is what ends
/// wholeness at the cap.
const WHOLE: &str = "whole";

#[derive(Clone)]
pub struct RedisTimelines {
    connection: ConnectionManager,
    namespace: String,
    cap: usize,
    /// In milliseconds, as `PEXPIRE` takes it.
    ttl_ms: u64,
}

impl std::fmt::Debug for RedisTimelines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTimelines")
            .field("namespace", &self.namespace)
            .field("cap", &self.cap)
            .field("ttl_ms", &self.ttl_ms)
            .finish()
    }
}

impl RedisTimelines {
    /// Connects, failing now if Redis is unreachable.
    pub async fn connect(
        url: &str,
        namespace: String,
        cap: usize,
        ttl: Duration,
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
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1),
        })
    }

    /// `range`, and with `renew` the renewal of the time to live, in one pipeline: the sentinels,
    /// the ids, the size (and `PEXPIRE`).
    async fn slice(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
        renew: bool,
    ) -> Result<Option<Slice>, CacheError> {
        let mut pipe = redis::pipe();
        self.queue_slice(&mut pipe, reader, below, limit, renew);
        let (built, whole, members, size): SliceReply =
            pipe.query_async(&mut self.connection.clone()).await?;
        Ok(slice(built, whole, members, size))
    }

    /// Queues on `pipe` the commands of [`slice`](Self::slice), which answer a [`SliceReply`].
    fn queue_slice(
        &self,
        pipe: &mut redis::Pipeline,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
        renew: bool,
    ) {
        let key = self.key(reader);
        pipe.cmd("ZSCORE")
            .arg(&key)
            .arg(BUILT)
            .cmd("ZSCORE")
            .arg(&key)
            .arg(WHOLE)
            .cmd("ZREVRANGEBYSCORE")
            .arg(&key)
            .arg(upper(below))
            .arg("(0")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .cmd("ZCARD")
            .arg(&key);
        if renew {
            pipe.cmd("PEXPIRE").arg(&key).arg(self.ttl_ms).ignore();
        }
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

/// What the commands of [`RedisTimelines::queue_slice`] answer: the sentinels' scores, the
/// members with theirs, the size with the sentinels.
type SliceReply = (Option<f64>, Option<f64>, Vec<(String, f64)>, usize);

/// The slice a [`SliceReply`] describes, `None` if the timeline is not built.
fn slice(
    built: Option<f64>,
    whole: Option<f64>,
    members: Vec<(String, f64)>,
    size: usize,
) -> Option<Slice> {
    let sentinels = 1 + usize::from(whole.is_some());
    built.map(|_| Slice {
        ids: ids(members),
        size: size.saturating_sub(sentinels),
        whole: whole.is_some(),
    })
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
            pipe.cmd("PEXPIRE")
                .arg(&key)
                .arg(self.ttl_ms)
                .arg("NX")
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

    async fn forget(&self, readers: &[UserId]) -> Result<(), CacheError> {
        if readers.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = readers.iter().map(|reader| self.key(*reader)).collect();
        let () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    async fn add(&self, reader: UserId, posts: &[PostId], built: bool) -> Result<(), CacheError> {
        let key = self.key(reader);
        let mut pipe = redis::pipe();
        if !built {
            // A backfill: the author's posts below the tail are not here.
            pipe.cmd("ZREM").arg(&key).arg(WHOLE).ignore();
        }
        if built || !posts.is_empty() {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&key);
            if built {
                zadd.arg(0).arg(BUILT);
                if posts.len() < self.cap {
                    zadd.arg(0).arg(WHOLE);
                }
            }
            for post in posts {
                zadd.arg(post.get()).arg(post.get());
            }
            pipe.add_command(zadd).ignore();
            if built {
                pipe.cmd("PEXPIRE").arg(&key).arg(self.ttl_ms).ignore();
            }
            self.trim(&mut pipe, &key);
        }
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

    async fn touch(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Option<Slice>, CacheError> {
        // Renewing a timeline that is not built does no harm: the read that asked rebuilds it
        // next, which sets the time again.
        self.slice(reader, below, limit, true).await
    }

    async fn range(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Option<Slice>, CacheError> {
        self.slice(reader, below, limit, false).await
    }

    async fn range_many(
        &self,
        readers: &[UserId],
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Option<Slice>>, CacheError> {
        if readers.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for reader in readers {
            self.queue_slice(&mut pipe, *reader, below, limit, false);
        }
        // One reply per command, four per timeline.
        let replies: Vec<redis::Value> = pipe.query_async(&mut self.connection.clone()).await?;
        replies
            .chunks(4)
            .map(|reply| {
                let (built, whole, members, size): SliceReply =
                    redis::FromRedisValue::from_redis_value(redis::Value::Array(reply.to_vec()))
                        .map_err(redis::RedisError::from)?;
                Ok(slice(built, whole, members, size))
            })
            .collect()
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
        super::super::conformance::all(&connect(&url, TTL).await).await;
    }

    const TTL: Duration = Duration::from_secs(3_600);

    async fn connect(url: &str, ttl: Duration) -> RedisTimelines {
        RedisTimelines::connect(
            url,
            platform::testing::unique_namespace(),
            3,
            ttl,
            Duration::from_secs(2),
        )
        .await
        .expect("REDIS_URL is set but Redis is not reachable")
    }

    /// The key's time to live in milliseconds (-1: none, -2: no key).
    async fn pttl(cache: &RedisTimelines, reader: UserId) -> i64 {
        redis::cmd("PTTL")
            .arg(cache.key(reader))
            .query_async(&mut cache.connection.clone())
            .await
            .unwrap()
    }

    /// Sets the key's time to live, as if time had passed.
    async fn expire_in(cache: &RedisTimelines, reader: UserId, ms: u64) {
        let _: i64 = redis::cmd("PEXPIRE")
            .arg(cache.key(reader))
            .arg(ms)
            .query_async(&mut cache.connection.clone())
            .await
            .unwrap();
    }

    fn user(n: u64) -> UserId {
        UserId::new(n).unwrap()
    }

    fn post(n: u64) -> PostId {
        PostId::new(n).unwrap()
    }

    #[tokio::test]
    async fn a_built_timeline_lives_for_its_time_to_live_and_a_read_renews_it() {
        let Some(url) = platform::testing::redis_url() else {
            return;
        };
        let cache = connect(&url, TTL).await;
        let full = TTL.as_millis() as i64;

        cache.add(user(1), &[post(1)], true).await.unwrap();
        assert!(pttl(&cache, user(1)).await > full - 5_000);

        // A minute left, as if the window had almost passed; then the reader reads.
        expire_in(&cache, user(1), 60_000).await;
        assert_eq!(
            cache.touch(user(1), None, 10).await.unwrap(),
            Some(Slice {
                ids: vec![post(1)],
                size: 1,
                whole: true,
            })
        );

        assert!(pttl(&cache, user(1)).await > full - 5_000, "renewed");
    }

    #[tokio::test]
    async fn a_fan_out_insert_gives_a_new_timeline_the_time_to_live_and_leaves_an_old_ones() {
        let Some(url) = platform::testing::redis_url() else {
            return;
        };
        let cache = connect(&url, TTL).await;
        let full = TTL.as_millis() as i64;
        cache.add(user(2), &[], true).await.unwrap();
        expire_in(&cache, user(2), 60_000).await;

        cache.insert(&[user(2), user(3)], post(7)).await.unwrap();

        assert!(pttl(&cache, user(2)).await <= 60_000, "kept its time");
        assert!(
            pttl(&cache, user(3)).await > full - 5_000,
            "given the time to live"
        );
    }

    #[tokio::test]
    async fn an_expired_timeline_reads_as_not_built() {
        let Some(url) = platform::testing::redis_url() else {
            return;
        };
        let cache = connect(&url, TTL).await;
        cache.add(user(4), &[post(1)], true).await.unwrap();

        expire_in(&cache, user(4), 1).await;
        // Redis removes a key whose time has passed when it is next touched.
        tokio::time::sleep(Duration::from_millis(5)).await;

        assert_eq!(cache.touch(user(4), None, 10).await.unwrap(), None);
        assert_eq!(pttl(&cache, user(4)).await, -2, "the key is gone");
    }
}
